"""pinrec's own code as one zip, for executors that cannot import it from the driver's disk.

A cluster's executors run on other machines (or, in the tests, with the driver's checkout hidden):
they import pinrec's modules (UDFs, ``mapInPandas`` functions, pickled closures) from this zip,
which both the spark-submit path (``--py-files``) and an in-process session on a cluster master
(``SparkContext.addPyFile``, :func:`pinrec.jobs.io.spark.get_spark`) ship with the application.
"""
from __future__ import annotations

import importlib.util
import zipfile
from pathlib import Path

PACKAGES = ("schemas", "jobs", "models", "export")


def package_zip(dest: Path) -> Path:
    """pinrec's packages (``.py`` files only) as ``dest/pinrec.zip``, laid out as installed:
    ``pinrec/jobs/...``, ``pinrec/models/...`` (wherever this installation keeps them)."""
    out = dest / "pinrec.zip"
    folders: set[str] = set()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for package in PACKAGES:
            spec = importlib.util.find_spec(f"pinrec.{package}")
            if spec is None or not spec.submodule_search_locations:
                raise ModuleNotFoundError(f"pinrec.{package} is not installed: cannot ship it to the executors")
            root = Path(next(iter(spec.submodule_search_locations)))
            for source in sorted(root.rglob("*.py")):
                name = f"pinrec/{package}/{source.relative_to(root).as_posix()}"
                parts = name.split("/")[:-1]
                for i in range(1, len(parts) + 1):
                    # Folder entries too: zipimport finds the namespace package ``pinrec`` (no
                    # __init__.py) only through its folder's own entry.
                    folder = "/".join(parts[:i]) + "/"
                    if folder not in folders:
                        folders.add(folder)
                        z.writestr(folder, "")
                z.write(source, name)
    return out
