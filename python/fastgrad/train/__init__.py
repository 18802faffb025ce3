"""The built-in training examples behind `fastgrad train NAME`.

Each public module of this package is one example. It defines

    NAME         the command-line name (``fastgrad train NAME``)
    DESCRIPTION  one line for ``fastgrad train --help``
    add_arguments(parser)   its own options (the shared ones, --seed and
                            --out, are added for it)
    run(args) -> int        trains, writes learning curves (CSV, and PNG when
                            matplotlib is installed) and a NAME_summary.json
                            of its final metrics into args.out, prints a
                            summary, returns the exit status

The registry lists the package, so adding an example is adding a module.
"""
import importlib
import pkgutil

__all__ = ["examples"]


def examples():
    """Return {NAME: module} for every example, sorted by name."""
    found = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        found[module.NAME] = module
    return dict(sorted(found.items()))
