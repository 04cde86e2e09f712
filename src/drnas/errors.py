"""The one base class of every error drnas reports to a user as a single line (the CLI catches it), and the
guard that keeps a Ctrl-C from being taken for such an error."""


class DrnasError(Exception):
    """A problem with the user's input or run; the message names the problem and the fix."""


class ConfigError(DrnasError, ValueError):
    """An inconsistent or malformed configuration; the message names the field and the fix."""


def shown(value: object, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, for echoing user input in a one-line error (an integer too long
    for Python to write out is shown by its size)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 3000:
        return f"an integer of about {int(value.bit_length() * 0.30103)} digits"
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def reraise_interrupt(err: BaseException) -> None:
    """Raise KeyboardInterrupt if ``err`` came from one: for handlers that must survive any failure of optional
    work (a plot, a probe) but not a Ctrl-C. Libraries can turn an interrupt into another exception on its way
    out (Python 3.11 reports an exception from ``__set_name__`` as a RuntimeError; matplotlib's first import
    runs through several), and a plain ``except Exception`` would then swallow it and let the run go on."""
    seen: set[int] = set()
    link: BaseException | None = err
    while link is not None and id(link) not in seen:
        if isinstance(link, KeyboardInterrupt):
            raise KeyboardInterrupt from err
        seen.add(id(link))
        link = link.__cause__ or link.__context__
