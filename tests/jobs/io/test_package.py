"""pinrec's code as a zip for executors that do not share the driver's disk."""
from __future__ import annotations

import subprocess
import sys
import zipfile

from pinrec.jobs.io.package import PACKAGES, package_zip


def test_the_zip_alone_makes_pinrec_importable(tmp_path):
    zipped = package_zip(tmp_path)
    names = set(zipfile.ZipFile(zipped).namelist())
    assert {"pinrec/", "pinrec/jobs/", "pinrec/jobs/io/", "pinrec/jobs/io/package.py"} <= names
    assert {n.split("/")[1] for n in names if n.count("/") >= 2} == set(PACKAGES)
    # -S -I: no site-packages, so no editable install; only the zip can provide pinrec
    probe = (f"import sys; sys.path.insert(0, {str(zipped)!r}); import pinrec.jobs.io.package as m; "
             "print(m.__file__)")
    out = subprocess.run([sys.executable, "-S", "-I", "-c", probe], check=False, capture_output=True, text=True,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"{zipped}/pinrec/jobs/io/package.py"
