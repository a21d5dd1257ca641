"""CPU seconds per thread group, as the counters snapshot reports them."""

from concurrent.futures import ThreadPoolExecutor

from streams.counters import CounterBoard, thread_cpu_seconds


def _spin(iterations: int) -> int:
    total = 0
    for i in range(iterations):
        total += i * i
    return total


def test_executor_threads_are_grouped_by_name_and_their_work_is_counted() -> None:
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="ds-segment") as executor:
        before = thread_cpu_seconds()
        list(executor.map(_spin, [2_000_000, 2_000_000]))
        after = thread_cpu_seconds()
    assert before.get("segment", 0.0) < after["segment"]
    assert set(after) >= {"segment", "event_loop", "process"}
    groups = sum(seconds for group, seconds in after.items() if group != "process")
    assert after["process"] >= groups - 1e-6  # the process also counts native and ended threads


def test_the_counters_snapshot_carries_them() -> None:
    assert "process" in CounterBoard().snapshot()["cpu_s"]
