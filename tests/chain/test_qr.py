"""QR codes of payment URIs: the PNG is a real PNG whose modules are the symbol's matrix, a real
decoder (zbar's ``zbarimg``, when installed) reads the URI back, and the SVG is well-formed XML.
"""
from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET

import png
import pytest

from shared.chain.qr import qr_code, qr_png, qr_svg

URI = ("ethereum:0x5FbDB2315678afecb367f032d93F642f64180aa3@31337/transfer"
       "?address=0x70997970C51812dc3A010C7d01b50e0d17dc79C8&uint256=12345678")


def _modules(png_bytes: bytes, box: int, border: int) -> list[list[bool]]:
    """Read the PNG back and sample each module's centre (True = dark)."""
    width, height, rows, info = png.Reader(bytes=png_bytes).read()
    rows = [list(r) for r in rows]
    assert width == height
    planes = info["planes"]
    dark_max = (2 ** info["bitdepth"] - 1) // 2
    n = width // box
    return [[rows[y * box + box // 2][(x * box + box // 2) * planes] <= dark_max for x in range(n)]
            for y in range(n)]


def test_png_is_a_png_whose_pixels_are_the_qr_matrix():
    data = qr_png(URI, box_size=4, border=4)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    matrix = qr_code(URI).get_matrix()          # includes the quiet zone (border)
    assert _modules(data, box=4, border=4) == matrix
    assert len(matrix) == 4 * 2 + 17 + 4 * qr_code(URI).version
    # the quiet zone is white, the finder pattern in the top-left corner is dark
    assert not any(matrix[0]) and matrix[4][4] and matrix[4][10]


def test_png_decodes_to_the_uri_with_a_real_decoder(tmp_path):
    if not shutil.which("zbarimg"):
        pytest.skip("zbarimg (apt-get install zbar-tools) is not installed")
    for text in (URI, "ethereum:0x70997970C51812dc3A010C7d01b50e0d17dc79C8@31337?value=2014000000000000000"):
        path = tmp_path / "qr.png"
        path.write_bytes(qr_png(text))
        out = subprocess.run(["zbarimg", "--quiet", "--raw", str(path)], capture_output=True,
                             text=True, timeout=30, check=False)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == text


def test_svg_is_well_formed_and_draws_the_same_symbol():
    svg = qr_svg(URI)
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    paths = root.findall("{http://www.w3.org/2000/svg}path")
    assert len(paths) == 1 and paths[0].get("d")
    size = len(qr_code(URI).get_matrix())
    assert root.get("viewBox") is not None
    # one "M...z" square per dark module
    dark = sum(sum(row) for row in qr_code(URI).get_matrix())
    assert paths[0].get("d").count("z") == dark
    assert size > 21


def test_more_correction_gives_a_bigger_symbol_and_bad_input_is_refused():
    assert qr_code(URI, error_correction="H").version > qr_code(URI, error_correction="L").version
    for bad in ("", None, "x" * 5000):
        with pytest.raises(ValueError):
            qr_png(bad)
    with pytest.raises(ValueError):
        qr_svg(URI, box_size=0)
