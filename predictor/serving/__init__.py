"""The wire: server, edge, HTTP guard, v2 binary data and the KServe / uvicorn fences."""
