"""JSON records the package writes and reads back: encoding and format versions.

Records (ES checkpoint headers, export metadata, the `mnistc` results) hold
numpy scalars and arrays: `json_default` encodes them. A record names its
format version; `upgrade` brings an older record to the current format one
version at a time, with one function per version step, so that the code
reading a record only knows the current format.
"""

import json

import numpy as np

from keras_odetoode.errors import InputError


def json_default(value):
    """`json.dump`'s `default=`: numpy arrays and scalars (and tensors) as plain JSON values."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "numpy") and hasattr(value, "dtype"):  # a tensor, without importing TensorFlow
        return np.asarray(value).tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serialisable")


def to_json(value, **kwargs):
    """`json.dumps(value, default=json_default, **kwargs)`."""
    return json.dumps(value, default=json_default, **kwargs)


def plain(value):
    """`value` with numpy values turned into plain Python ones (a JSON round trip)."""
    return json.loads(to_json(value))


def upgrade(record, kind, steps, version, version_key="format_version"):
    """`record` brought to format `version` by the `steps` from its own version on.

    Args:
        record: a dict read from JSON; a record without `version_key` is of version 1.
        kind: what the record is, for messages ("ES checkpoint").
        steps: {v: function taking a version-v record and returning the version-(v + 1) one}.
        version: the current format version.
        version_key: where the record stores its version.

    Returns:
        The upgraded record (a new dict) with `version_key` set to `version`.

    Raises:
        InputError: the record's version is newer than `version` (written by a
            newer release) or not a version at all.
    """
    found = record.get(version_key, 1)
    if isinstance(found, bool) or not isinstance(found, int) or not 1 <= found <= version:
        newer = isinstance(found, int) and not isinstance(found, bool) and found > version
        raise InputError(
            f"Unsupported {kind} format. Received: {version_key}={found!r}. Expected: 1 to {version}"
            + (" (a newer version of keras_odetoode wrote it: upgrade keras_odetoode)" if newer else "")
        )
    record = dict(record)
    for step in range(found, version):
        record = steps[step](record)
    record[version_key] = version
    return record
