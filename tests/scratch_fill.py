"""A script that fills its scratch space (``--scratch_size``) and says how it ended."""

FILLS_SCRIPT = """\
import errno, json, os
where = os.environ.get("GRID_SCRATCH_DIR", "/tmp/scratch")
written, error = 0, None
chunk = b"x" * (1 << 20)
try:
    with open(os.path.join(where, "big.bin"), "wb") as fh:
        while written < (3 << 30):
            fh.write(chunk)
            written += len(chunk)
        fh.flush()
except OSError as exc:
    error = errno.errorcode.get(exc.errno, str(exc.errno))
print("SCRATCH " + json.dumps({"where": where, "written_mb": written >> 20, "error": error}))
"""
