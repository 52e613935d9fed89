"""The publisher's rate limit and rate report, with explicit times."""
import pytest

from edge.daemon.sendrate import RateMeter, TokenBucket


def test_no_limit_always_takes():
    bucket = TokenBucket(0, now=0.0)
    assert all(bucket.take(10 ** 9, now=0.0) == 0.0 for _ in range(3))


def test_the_bucket_fills_at_the_rate_and_says_how_long_to_wait():
    bucket = TokenBucket(1000, now=0.0)
    assert bucket.take(500, now=0.0) == pytest.approx(0.5)      # starts empty: 0.5 s until 500 bytes
    assert bucket.take(500, now=0.5) == 0.0
    assert bucket.take(500, now=0.5) == pytest.approx(0.5)      # spent again
    assert bucket.take(500, now=1.0) == 0.0


def test_a_burst_is_at_most_one_second_or_one_chunk():
    bucket = TokenBucket(1000, now=0.0)
    assert bucket.take(1000, now=100.0) == 0.0                  # 100 s idle banks only 1000 bytes
    assert bucket.take(1, now=100.0) == pytest.approx(0.001)
    big = TokenBucket(1000, now=0.0)
    assert big.take(4000, now=10.0) == 0.0                      # a chunk bigger than a second's worth still goes


def test_the_meter_averages_over_its_window_and_forgets_after_a_minute():
    meter = RateMeter()
    meter.record(1000, now=0.0)
    meter.record(3000, now=5.0)
    assert meter.bytes_per_s(now=9.0) == pytest.approx(400.0)   # 4000 bytes over 10 s
    assert meter.bytes_per_s(now=12.0) == pytest.approx(300.0)  # the first one left the window
    meter.record(10, now=70.0)                                  # trims the ones older than 60 s
    assert meter.bytes_per_s(now=70.0, window_s=100.0) == pytest.approx(0.1)
