"""The UCR/UEA ``.ts`` reader (issue 39, data): small files written here, in the archive's layout, read back to
the numbers written; a malformed line, a missing value and a header that disagrees with the data are named by
file and line."""

import numpy as np
import pytest

from qklstm.data.tsfile import read_ts

MULTI = """# a comment line, as the archive's files start
@problemName Toy
@timeStamps false
@missing true
@univariate false
@dimensions 2
@equalLength false
@classLabel true walk run
@data
1.0,2.0,3.0:0.5,0.5,0.4:walk

2.0,?,4.0,5.0:0.1,0.2,0.3,0.4:run
"""


def _write(tmp_path, text, name="x.ts"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_multivariate_file_of_unequal_lengths_and_string_labels_reads_as_written(tmp_path):
    ts = read_ts(_write(tmp_path, MULTI), missing="keep")
    assert ts.name == "Toy" and ts.classes == ["walk", "run"] and ts.labels == ["walk", "run"]
    assert ts.channels == 2 and not ts.equal_length
    np.testing.assert_array_equal(ts.series[0], [[1.0, 0.5], [2.0, 0.5], [3.0, 0.4]])
    np.testing.assert_array_equal(ts.series[1][:, 1], [0.1, 0.2, 0.3, 0.4])
    assert np.isnan(ts.series[1][1, 0])


def test_a_missing_value_is_refused_by_default_and_filled_linearly_when_asked(tmp_path):
    path = _write(tmp_path, MULTI)
    with pytest.raises(
        ValueError, match=r"x\.ts:12: a missing value \(\?\): refused by default; missing='interpolate'"
    ):
        read_ts(path)
    filled = read_ts(path, missing="interpolate")
    np.testing.assert_array_equal(filled.series[1][:, 0], [2.0, 3.0, 4.0, 5.0])  # halfway between 2 and 4
    no_missing = _write(tmp_path, MULTI.replace("@missing true", "@missing false"), "y.ts")
    with pytest.raises(ValueError, match=r"y\.ts:12: .*header says @missing false"):
        read_ts(no_missing, missing="interpolate")


def test_a_univariate_equal_length_file_with_numeric_labels(tmp_path):
    text = "@problemName Num\n@univariate true\n@equalLength true\n@seriesLength 3\n@classLabel true 1 2\n@data\n"
    text += "0.1,0.2,0.3:1\n-1,-2,-3:2\n"
    ts = read_ts(_write(tmp_path, text))
    assert ts.labels == ["1", "2"] and ts.equal_length and [s.shape for s in ts.series] == [(3, 1), (3, 1)]
    np.testing.assert_array_equal(ts.series[1][:, 0], [-1.0, -2.0, -3.0])


@pytest.mark.parametrize(
    "text,match",
    [
        (
            MULTI.replace("1.0,2.0,3.0:0.5,0.5,0.4:walk", "1.0,2.0,3.0"),
            r"x\.ts:10: expected the dimensions separated by ':'",
        ),
        (MULTI.replace("0.5,0.5,0.4:walk", "0.5,0.5,0.4:0.1,0.1,0.1:walk"), r"x\.ts:10: 3 dimension\(s\) where"),
        (MULTI.replace(":walk\n", ":jump\n"), r"x\.ts:10: class 'jump' is not among @classLabel walk run"),
        (MULTI.replace("0.5,0.5,0.4", "0.5,zero,0.4"), r"x\.ts:10: expected comma-separated numbers or \?"),
        (MULTI.replace("0.5,0.5,0.4", "0.5,0.5"), r"x\.ts:10: its dimensions have different lengths \[3, 2\]"),
        (MULTI.replace("@equalLength false", "@equalLength true"), r"x\.ts: @equalLength true, but the cases have 3"),
        (MULTI.replace("@timeStamps false", "@timeStamps true"), r"@timeStamps true is not supported"),
        (MULTI.replace("@classLabel true walk run", "@classLabel false"), r"x\.ts:8: @classLabel names no classes"),
        (MULTI.replace("@univariate false", "@univariate maybe"), r"x\.ts:5: @univariate expects true or false"),
        (MULTI.replace("@data\n", ""), r"x\.ts: no @data line"),
        ("@classLabel true a\n@data\n", r"x\.ts: no case after @data"),
    ],
    ids=[
        "no-label",
        "dimensions",
        "label",
        "number",
        "lengths",
        "equal",
        "timestamps",
        "classes",
        "flag",
        "data",
        "empty",
    ],
)
def test_bad_files_are_named_by_file_and_line(tmp_path, text, match):
    with pytest.raises(ValueError, match=match):
        read_ts(_write(tmp_path, text), missing="keep")


def test_a_missing_file_names_the_argument(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"--data: .*nope\.ts does not exist \(expected a \.ts file"):
        read_ts(tmp_path / "nope.ts")
