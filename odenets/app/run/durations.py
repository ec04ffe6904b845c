"""How long a run took or has left, in words a person reads at a glance."""


def duration(seconds: float) -> str:
    """``42 s``, ``2 min 46 s``, ``3 h 05 min``."""
    s = round(seconds)
    if s < 60:
        return f"{seconds:.2g} s" if seconds < 10 else f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"
