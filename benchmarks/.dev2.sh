export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1 XDG_CACHE_HOME=/tmp/xc
timeout 120 python3 -m pytest -q -p no:cacheprovider -rs tests/test_devices.py 2>&1 | tail -5
timeout 200 python3 -m pytest -q -p no:cacheprovider -n 14 --deselect tests/test_devices.py 2>&1 > $OUT/suite_all.txt; tail -30 $OUT/suite_all.txt
