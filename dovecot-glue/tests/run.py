"""Runs the Dovecot test suite; the last line is "N passed, M failed".

Usage: python3 run.py [NAME...]   (NAMEs select tests by substring, like unittest -k)
See harness.py for the environment variables.
"""

import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402


class Result(unittest.TextTestResult):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.ran_ids = set()

    def startTest(self, test):
        self.ran_ids.add(test.id())
        super().startTest(test)


def main(argv):
    loader = unittest.TestLoader()
    if argv:
        loader.testNamePatterns = [f"*{a}*" for a in argv]
    suite = loader.discover(HERE, pattern="test_*.py", top_level_dir=HERE)
    print(f"driver: {harness.DRIVER}, port base {harness.PORT_BASE}", flush=True)
    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=2, resultclass=Result)
    result = None
    try:
        result = runner.run(suite)
    finally:
        failed_ids = set()
        if result is not None:
            failed_ids = {t.id() for t, _ in result.failures + result.errors}
            failed_ids |= {t.id() for t in result.unexpectedSuccesses}
        bad = harness.shutdown(success=result is not None and not failed_ids)
    # Errors outside any test (setUpClass, module imports) count once each.
    failed = len(failed_ids)
    passed = len(result.ran_ids - failed_ids - {t.id() for t, _ in result.skipped})
    if bad:
        print("Dovecot logged errors outside the tests (or at shutdown):")
        for line in bad:
            print("  " + line)
        failed += 1
    for test, _ in result.expectedFailures:
        print(f"known defect (expected failure): {test.id()}")
    for test, reason in result.skipped:
        print(f"skipped: {test.id()}: {reason}")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
