"""Whether a dataset of the user's own files fits in memory, checked before it is read (bytes throughout)."""

from __future__ import annotations

from pathlib import Path

from pisearch.errors import UserError

MEMINFO = Path("/proc/meminfo")
CGROUP = Path("/sys/fs/cgroup")  # cgroup v2: memory.max and memory.current of this process's container
PEAK_COPIES = 2  # the images once, plus the copies made while train is split into train and validation


def available_bytes() -> int | None:
    """Memory this process may still take: the system's ``MemAvailable``, lowered to the cgroup's limit minus its
    use where one is set; None where neither can be read (the check is then skipped)."""
    found = []
    try:
        line = next(ln for ln in MEMINFO.read_text().splitlines() if ln.startswith("MemAvailable:"))
        found.append(int(line.split()[1]) * 1024)
    except (OSError, StopIteration, ValueError, IndexError):
        pass
    try:
        limit = (CGROUP / "memory.max").read_text().strip()
        if limit != "max":
            found.append(int(limit) - int((CGROUP / "memory.current").read_text()))
    except (OSError, ValueError):
        pass
    return min(found) if found else None


def size_text(n: float) -> str:
    """A byte count in MB below a gigabyte, else in GB."""
    return f"{n / 1e6:,.1f} MB" if n < 1e9 else f"{n / 1e9:,.2f} GB"


def check_fits(where: str, images: int, shape: tuple[int, int, int], extra: int = 0) -> None:
    """Refuse, before reading, ``images`` images of ``shape`` (C, H, W: uint8 at the space's pixels) plus ``extra``
    bytes read on the way (an array as stored) when they would not fit: a UserError with the estimate and how to
    lower it."""
    image_bytes = shape[0] * shape[1] * shape[2]
    need = PEAK_COPIES * images * image_bytes + extra
    free = available_bytes()
    if free is None or need <= free:
        return
    fit = max(0, (free - extra) // max(1, PEAK_COPIES * image_bytes))
    raise UserError(f"{where}: {images:,} images of {'×'.join(map(str, shape))} uint8 need about {size_text(need)} "
                    f"of memory while loading, more than the {size_text(free)} available; lower the search space's "
                    f"resolution or read a stratified part with dataset.subset (about {fit:,} images fit)")
