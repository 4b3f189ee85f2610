import json

from mkdump import manifest as M


def render(**kw):
    args = dict(arch="x86_64", source_date_epoch=1, sources={}, patches={}, configs={}, toolchain={}, options={},
                outputs=[], checks=[])
    args.update(kw)
    return M.render(**args)


def test_render_is_canonical():
    a = render(outputs=[{"path": "b", "size": 1, "sha256": "x"}, {"path": "a", "size": 2, "sha256": "y"}],
               options={"z": 1, "a": 2})
    b = render(outputs=[{"path": "a", "size": 2, "sha256": "y"}, {"path": "b", "size": 1, "sha256": "x"}],
               options={"a": 2, "z": 1})
    assert a == b
    data = json.loads(a)
    assert [o["path"] for o in data["outputs"]] == ["a", "b"]
    assert data["format"] == M.FORMAT


def test_local_directories_are_mapped_out():
    configs = {"minik": {"fragments": [{"name": "/home/u/proj/configs/minik-common.config"}],
                        "origin": "/home/u/proj/configs/x.config:3 and /srv/b/x86_64/minik"}}
    text = render(configs=configs, prefixes=[("/home/u/proj", ""), ("/srv/b/", "$build/")])
    assert "/home/u" not in text and "/srv/b" not in text
    data = json.loads(text)["inputs"]["configs"]["minik"]
    assert data["fragments"][0]["name"] == "configs/minik-common.config"
    assert data["origin"] == "configs/x.config:3 and $build/x86_64/minik"


def test_file_entry(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"abc")
    e = M.file_entry(p)
    assert e == {"path": "f", "size": 3,
                 "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}
