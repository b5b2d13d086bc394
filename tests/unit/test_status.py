"""`fab status`'s rows, table and exit code (pure)."""
from tasks.steps.status import COLUMNS, Row, exit_code, table


def test_table_aligns_every_column_and_marks_problems():
    rows = [Row("lb", "lb", service="nginx running", healthy="yes", cert_days=364),
            Row("node1", "node", service="running", healthy="yes", pending="no", drained="no",
                drift="no"),
            Row("node2", "node", reachable=False, problems=["unreachable"])]
    lines = table(rows)
    assert lines[0].split() == list(COLUMNS)
    assert lines[1].split() == ["lb", "lb", "yes", "nginx", "running", "yes", "-", "-", "-",
                                "364", "-", "-"]
    assert lines[3].split()[:3] == ["node2", "node", "NO"]
    # aligned: every row's second cell starts where the header's does
    col = lines[0].index("role")
    assert all(ln[col - 2:col] == "  " and ln[col] != " " for ln in lines)


def test_exit_code_is_1_for_any_problem():
    good = [Row("node1", "node"), Row("db", "db")]
    assert exit_code(good) == 0
    assert exit_code(good + [Row("node2", "node", problems=["drained at the LB"])]) == 1
    assert exit_code([Row("lb", "lb", reachable=False)]) == 1
