"""Secrets are never stored or printed: the password of a URI (`postgresql://user:PASSWORD@host/db`,
`http://user:PASSWORD@host`) becomes `***` wherever the harness writes a URI into a tag, a param, config.yaml
or the console."""
from __future__ import annotations

import re
from typing import Mapping

PASSWORD_IN_URI = re.compile(r"(?P<start>\b[a-zA-Z][\w+.-]*://[^:/@\s]*):(?P<password>[^@/\s]+)@")


def redacted(text: str) -> str:
    """`text` with every URI's password replaced by `***`."""
    return PASSWORD_IN_URI.sub(r"\g<start>:***@", text)


def redacted_values(values: Mapping[str, str]) -> dict[str, str]:
    return {key: redacted(str(value)) for key, value in values.items()}
