"""The one mapping from exceptions to statuses: client mistakes and missing features are
never in the server-error class."""

from __future__ import annotations

from kserve.errors import InvalidInput, ModelNotFound

from predictor.errors import classify


def test_a_feature_kserve_does_not_implement_is_404_not_501() -> None:
    err = classify(NotImplementedError("Could not find explainer_host."))
    assert (err.status_code, err.grpc_code) == (404, "UNIMPLEMENTED")
    assert "explainer_host" in err.message


def test_kserve_client_errors_keep_their_class() -> None:
    assert classify(InvalidInput("bad")).status_code == 400
    assert classify(ModelNotFound("nope")).status_code == 404


def test_a_message_quoting_a_lone_surrogate_stays_encodable() -> None:
    err = classify(InvalidInput("field 'a\ud800' is bad"))
    assert err.message == "field 'a\\ud800' is bad"
    err.message.encode("utf-8")


def test_a_client_that_went_away_is_not_a_server_error() -> None:
    from starlette.requests import ClientDisconnect

    err = classify(ClientDisconnect())
    assert (err.status_code, err.grpc_code) == (499, "CANCELLED")
