"""KServe storageUri values: which schemes the chart takes, and the version each one names.

Why one module: `mlops.publish` prints these URIs, `mlops.promote` writes them into the
canary step, and the chart's values.schema.json checks them; all three must agree on the
grammar (tests/mlops/test_publish.py holds the schema's pattern to this one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The schemes the chart accepts; publishing writes the two that need no cluster access.
SCHEMES = ("pvc", "s3", "gs", "oci")
PUBLISHABLE = ("s3", "oci")
# An OCI tag; versions also name S3 prefixes, so one rule serves both.
VERSION_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_BUCKET = r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]"
_PATTERNS = {
    "pvc": re.compile(r"pvc://(?P<loc>[a-z0-9]([-a-z0-9]*[a-z0-9])?)(?P<path>/\S*)?"),
    "s3": re.compile(rf"s3://(?P<loc>{_BUCKET})(?P<path>/\S*)?"),
    "gs": re.compile(rf"gs://(?P<loc>{_BUCKET})(?P<path>/\S*)?"),
    "oci": re.compile(
        r"oci://(?P<loc>[A-Za-z0-9.-]+(:[0-9]+)?)/(?P<path>[a-z0-9._/-]+)"
        r"(:(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})|@(?P<digest>sha256:[a-f0-9]{64}))?"
    ),
}


class StorageUriError(ValueError):
    """A storageUri the chart (and KServe) would not take."""


@dataclass(frozen=True)
class StorageUri:
    """A parsed storageUri. `location` is the claim, bucket or registry; `path` has no leading
    slash; `tag`/`digest` are set for oci:// references that carry them."""

    scheme: str
    location: str
    path: str
    tag: str = ""
    digest: str = ""

    @classmethod
    def parse(cls, uri: str, *, versioned: bool = False) -> StorageUri:
        """Parse `uri`; `versioned` also demands an oci:// tag or digest (the chart does)."""
        scheme = uri.split("://", 1)[0] if "://" in uri else ""
        pattern = _PATTERNS.get(scheme)
        if pattern is None:
            raise StorageUriError(
                f"unknown storage scheme in {uri!r}: use one of "
                + ", ".join(f"{s}://" for s in SCHEMES)
            )
        match = pattern.fullmatch(uri)
        if match is None:
            raise StorageUriError(f"malformed {scheme}:// storageUri {uri!r}")
        parts = match.groupdict()
        out = cls(
            scheme,
            parts["loc"],
            (parts["path"] or "").strip("/"),
            parts.get("tag") or "",
            parts.get("digest") or "",
        )
        if versioned and scheme == "oci" and not (out.tag or out.digest):
            raise StorageUriError(f"{uri!r} names no tag or digest: a modelcar must be versioned")
        return out

    @property
    def version(self) -> str:
        """The model version the URI names: the oci:// tag, else the last path segment."""
        if self.scheme == "oci":
            return self.tag
        return self.path.rsplit("/", 1)[-1]

    def with_version(self, version: str) -> str:
        """This URI (a prefix or repository) narrowed to one version: `prefix/VERSION/` for
        object stores, `repo:VERSION` for OCI.

        The trailing slash matters: KServe lists objects by prefix, so without it
        `.../v1` would also fetch `.../v10/...`.
        """
        if not VERSION_RE.fullmatch(version):
            raise StorageUriError(f"version {version!r} cannot name an OCI tag or S3 prefix")
        if self.scheme == "oci":
            return f"oci://{self.location}/{self.path}:{version}"
        prefix = f"{self.path}/" if self.path else ""
        return f"{self.scheme}://{self.location}/{prefix}{version}/"


def check(uri: str) -> str:
    """`uri` itself when the chart would take it as a model's storageUri."""
    StorageUri.parse(uri, versioned=True)
    return uri
