"""Print `cloud-check: N passed, M failed` from a pytest junit XML report (make cloud-check).

Errors count as failed; skipped tests are neither (pytest's own summary above lists why they
skipped). Exits 1 when anything failed or nothing ran at all.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET


def main(path: str) -> int:
    tests = failed = skipped = 0
    for suite in ET.parse(path).getroot().iter("testsuite"):
        tests += int(suite.get("tests", 0))
        failed += int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        skipped += int(suite.get("skipped", 0))
    passed = tests - failed - skipped
    print(f"cloud-check: {passed} passed, {failed} failed")
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
