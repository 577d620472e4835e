"""Print one closing line for `make test` from the pytest JUnit reports it wrote:
'tests: N passed, N failed, N skipped' (unit + integration; lint, sanity and molecule
either pass or stop make before this line)."""
import sys
import xml.etree.ElementTree as ET

passed = failed = skipped = 0
for path in sys.argv[1:]:
    root = ET.parse(path).getroot()
    for suite in root.iter('testsuite'):
        tests = int(suite.get('tests', 0))
        bad = int(suite.get('failures', 0)) + int(suite.get('errors', 0))
        skip = int(suite.get('skipped', 0))
        passed += tests - bad - skip
        failed += bad
        skipped += skip
print('tests: %d passed, %d failed, %d skipped' % (passed, failed, skipped))
sys.exit(1 if failed or not passed else 0)
