"""Page cursors as a command line takes them: never starting with `-` (argparse would read `--cursor -x...` as a
missing value: a page in 64 could not be continued from the CLI), and round-tripping (pure)."""
import pytest

from payment_platform.serving import cursor
from payment_platform.serving.params import InvalidParameter


def test_no_cursor_starts_with_a_dash_and_each_one_decodes_to_its_position():
    made = [cursor.encode("list originator=X", f"row-{i}") for i in range(2000)]
    assert not [c for c in made if c.startswith("-")]
    assert all(cursor.decode(c, "list originator=X") == f"row-{i}" for i, c in enumerate(made))
    assert len({c[1] for c in made}) > 30  # after the letter, the base64 varies: the first one no longer can


def test_a_cursor_without_its_letter_is_refused_naming_the_parameter():
    made = cursor.encode("scope", "row")
    with pytest.raises(InvalidParameter, match="cursor"):
        cursor.decode(made[1:], "scope")
