import json

import pytest

from trading_assets.universe import SYMBOL_PATTERN, UniverseError, load_universe


def test_default_universe_has_250_plus_symbols_with_sectors_and_spy():
    u = load_universe()
    tradable = u.filter(~u["is_benchmark"])
    assert tradable.height >= 250
    assert u.filter(u["is_benchmark"])["symbol"].to_list() == ["SPY"]
    assert tradable["sector"].n_unique() >= 10 and "Unknown" not in tradable["sector"].to_list()
    assert all(SYMBOL_PATTERN.match(s) for s in u["symbol"])


@pytest.mark.parametrize(
    "body, message",
    [
        ("symbol,name,sector\nAAPL,Apple,IT\naapl;,Bad,IT\n", "line 3: invalid symbol"),
        ("symbol,name,sector\nAAPL,Apple,IT\nX'; DROP TABLE prices;--,Bad,IT\n", "line 3: invalid symbol"),
        ("symbol,name,sector\nAAPL,Apple,IT\nAAPL,Apple again,IT\n", "line 3: duplicate symbol 'AAPL'"),
        ("symbol,name,sector\n", "no tradable symbols"),
        ("ticker,name\nAAPL,Apple\n", "line 1: the header must name a 'symbol' column"),
        ("symbol,name,sector\nABCDEFGHIJK,Too long,IT\n", "line 2: invalid symbol"),
    ],
)
def test_bad_csv_files_name_the_line(tmp_path, body, message):
    f = tmp_path / "u.csv"
    f.write_text(body)
    with pytest.raises(UniverseError, match=message):
        load_universe(f)


def test_json_universe_and_benchmark_added(tmp_path):
    f = tmp_path / "u.json"
    f.write_text(json.dumps([{"symbol": "BRK.B", "name": "Berkshire", "sector": "Financials"}, "BF-B"]))
    u = load_universe(f)
    assert u["symbol"].to_list() == ["BF-B", "BRK.B", "SPY"]


def test_bad_json_names_the_item(tmp_path):
    f = tmp_path / "u.json"
    f.write_text(json.dumps([{"symbol": "OK"}, {"symbol": "b@d"}]))
    with pytest.raises(UniverseError, match="item 2: invalid symbol"):
        load_universe(f)
