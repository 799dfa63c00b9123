"""``python -m anygate.ops`` is the ``anygate`` command; ``anygate dev`` starts its children so."""

from anygate.ops.cli import main

main()
