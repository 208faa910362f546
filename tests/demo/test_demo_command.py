"""``seqae demo``: the command's checks (one line, exit status 2), the page it builds for what a
runs folder holds, and a real start of the server from the command line."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import pytest
import torch

from seqae.cli import main
from seqae.extras import missing_modules

needs_gradio = pytest.mark.skipif(bool(missing_modules("demo")), reason="needs seqae[demo]")


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_a_missing_runs_folder_is_one_line(tmp_path, capsys) -> None:
    assert main(["demo", "--runs", str(tmp_path / "nowhere")]) == 2
    line = _one_error_line(capsys)
    assert line.startswith(f"seqae: error: --runs {tmp_path / 'nowhere'}: no such folder")
    assert "seqae run vae_digits" in line


@pytest.mark.parametrize(
    ("flag", "value"), [("--port", "0"), ("--port", "http"), ("--threads", "0")]
)
def test_a_flag_that_is_no_count_is_refused(tmp_path, capsys, flag, value) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["demo", "--runs", str(tmp_path), flag, value])
    assert exit_.value.code == 2
    assert f"argument {flag}: {value!r}: must be an integer >= 1" in capsys.readouterr().err


def test_a_port_above_65535_is_one_line(tmp_path, capsys) -> None:
    assert main(["demo", "--runs", str(tmp_path), "--port", "65536"]) == 2
    assert _one_error_line(capsys) == (
        "seqae: error: --port 65536: not a port number; expected 1 to 65535"
    )


def test_without_gradio_the_command_says_how_to_install_it(tmp_path) -> None:
    code = textwrap.dedent(
        f"""
        import sys
        sys.modules["gradio"] = None  # as if the demo extra were not installed
        from seqae.cli import main
        sys.exit(main(["demo", "--runs", {str(tmp_path)!r}]))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "seqae: error: seqae demo needs seqae's 'demo' extra (gradio not installed): "
        "pip install 'seqae[demo]'"
    ]


@needs_gradio
def test_a_port_in_use_is_one_line(tmp_path, capsys) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["demo", "--runs", str(tmp_path), "--port", str(port)]) == 2
    line = _one_error_line(capsys)
    assert line.startswith(f"seqae: error: cannot serve on 127.0.0.1:{port}: ")
    assert line.endswith("give another --port or --host")


def _markdown(app) -> str:
    import gradio as gr

    return "\n".join(b.value for b in app.blocks.values() if isinstance(b, gr.Markdown))


@needs_gradio
def test_a_tab_without_a_trained_model_says_which_run_makes_one(tmp_path) -> None:
    from seqae.demo.app import build_app

    text = _markdown(build_app(tmp_path))
    for command in (
        "seqae run vae_digits",
        "seqae run vqvae",
        "seqae run summary_ae",
        "seqae run tree_ae",
    ):
        assert f"Train one with `{command}" in text, command
    if not missing_modules("audio"):
        assert "Train one with `seqae run vc`" in text


@needs_gradio
def test_a_tab_whose_extra_is_missing_names_it(tmp_path, monkeypatch) -> None:
    import seqae.demo.app as app_module

    monkeypatch.setattr(
        app_module,
        "missing_modules",
        lambda extra: ("transformers",) if extra == "text" else (),
    )
    text = _markdown(app_module.build_app(tmp_path))
    assert "This tab needs seqae's `text` extra (transformers not installed)" in text
    assert "`pip install 'seqae[text]'`" in text


@needs_gradio
def test_a_model_that_cannot_be_loaded_leaves_its_tab_with_the_reason(tiny_runs, tmp_path) -> None:
    from seqae.core import Autoencoder
    from seqae.demo.app import build_app

    runs = tmp_path / "runs"
    model = Autoencoder.from_pretrained(tiny_runs / "vae_digits" / "model")
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    model.save_pretrained(runs / "vae_digits" / "model")
    text = _markdown(build_app(runs))
    assert "This tab's model could not be loaded:" in text
    assert "NaN" in text or "nan" in text


@needs_gradio
def test_seqae_demo_serves_the_page_on_localhost_until_interrupted(tiny_runs) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "seqae.cli", "demo", "--runs", str(tiny_runs), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=Path(tiny_runs).parent,
        # Ctrl-C as in a terminal, even when these tests run as a background job (which
        # starts with SIGINT ignored, and a child inherits that)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        lines = []
        for line in proc.stdout:  # the found models, one line per tab, then the address
            lines.append(line.rstrip())
            if line.startswith("seqae demo: serving"):
                break
        assert lines[-1] == f"seqae demo: serving http://127.0.0.1:{port}/ (Ctrl-C stops it)"
        assert "Latent space (VAE): vae_digits" in lines
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as response:
            assert response.status == 200 and b"seqae demo" in response.read()
        proc.send_signal(signal.SIGINT)
        try:
            status = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
            pytest.fail(
                f"seqae demo still running 30 s after Ctrl-C; its stderr ends: {err[-2000:]}"
            )
        assert status == 0
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@needs_gradio
def test_the_server_binds_to_localhost_with_no_share_link_and_capped_uploads(tmp_path) -> None:
    from seqae.demo.app import build_app, launch_app
    from seqae.demo.limits import MAX_UPLOAD_MB

    app = build_app(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    try:
        assert launch_app(app, port=port) == f"http://127.0.0.1:{port}/"
        assert app.server_name == "127.0.0.1" and not app.share and app.share_url is None
        assert app.max_file_size == MAX_UPLOAD_MB * 1024**2
        assert not app.analytics_enabled
    finally:
        app.close()
