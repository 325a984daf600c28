import subprocess
import sys

import pytest
from typer.testing import CliRunner

import onebyone
from onebyone.cli import app
from onebyone.cli._common import parse_shape

runner = CliRunner()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"onebyone {onebyone.__version__}"


def test_help_lists_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "models" in result.stdout


def test_python_dash_m_is_the_same_program():
    out = subprocess.run(
        [sys.executable, "-m", "onebyone", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"onebyone {onebyone.__version__}"


def test_parse_shape():
    assert parse_shape("3x32x32") == (3, 32, 32)
    assert parse_shape("1, 28, 28") == (1, 28, 28)
    for bad in ["", "3x", "ax3", "3x0x4", "-1x2"]:
        try:
            parse_shape(bad)
        except ValueError as e:
            assert "--input" in str(e)
        else:
            raise AssertionError(f"{bad!r} was accepted")


def run_main(monkeypatch, capsys, *args):
    """Run the real entry point (``main``) in-process: its exit code, stdout and stderr."""
    from onebyone.cli import main

    monkeypatch.setattr(sys, "argv", ["onebyone", *args])
    with pytest.raises(SystemExit) as info:
        main()
    out, err = capsys.readouterr()
    return info.value.code, out, err


def test_usage_mistakes_are_one_line(monkeypatch, capsys):
    cases = [
        (["compress"], "Missing argument"),
        (["compress", "tutorial_base", "--rank", "4"], "Missing option '-o' / '--out'"),
        (["compress", "tutorial_base", "-o", "x", "--energy", "abc"], "Invalid value for '--energy'"),
        (["nosuchcommand"], "No such command 'nosuchcommand'"),
        (["models", "--bogus"], "No such option: --bogus"),
    ]
    for args, message in cases:
        code, out, err = run_main(monkeypatch, capsys, *args)
        assert code == 2, (args, out, err)
        lines = err.strip().splitlines()
        if len(lines) != 1 or not lines[0].startswith("error: ") or message not in lines[0]:
            pytest.fail(f"{args}: expected one line with {message!r}, got {err!r}")
        assert "╭" not in out + err  # no rich box


def test_help_and_version_exit_zero(monkeypatch, capsys):
    code, out, err = run_main(monkeypatch, capsys, "--version")
    assert (code, out.strip(), err) == (0, f"onebyone {onebyone.__version__}", "")
    code, out, _ = run_main(monkeypatch, capsys, "compress", "--help")
    assert code == 0 and "--rank" in out


def test_command_user_error_goes_through_main(monkeypatch, capsys):
    code, _, err = run_main(monkeypatch, capsys, "fuse", "nosuchmodel", "-o", "unused")
    assert code == 2
    assert err.startswith("error: unknown model 'nosuchmodel'") and len(err.strip().splitlines()) == 1


def test_interrupt_is_one_line_exit_130(monkeypatch, capsys):
    import onebyone.cli as cli

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "app", interrupted)
    code, _, err = run_main(monkeypatch, capsys)
    assert code == 130 and err == "error: interrupted\n"


def test_python_dash_m_usage_error_is_one_line():
    out = subprocess.run([sys.executable, "-m", "onebyone", "nosuchcommand"], capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip().startswith("error: No such command") and len(out.stderr.strip().splitlines()) == 1


def test_models_lists_and_a_pattern_matching_nothing_is_an_error():
    result = runner.invoke(app, ["models", "resnet5*"])
    assert result.exit_code == 0 and result.output.split() == ["resnet50", "resnet56"]
    result = runner.invoke(app, ["models", "nosuch*"])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert result.output.splitlines() == ["error: no model matches 'nosuch*'; `onebyone models` lists them all"]


COMPUTING_COMMANDS = ("compare", "compress", "convolutionalize", "fuse", "summary", "tour", "train")


@pytest.fixture
def torch_threads():
    """Restore torch's thread count after a test that sets it."""
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("command", COMPUTING_COMMANDS)
def test_every_computing_command_takes_threads(command):
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "--threads" in result.output and "OMP_NUM_THREADS" in result.output


def test_threads_default_is_one_unless_omp_num_threads_is_set(monkeypatch, torch_threads):
    import torch

    from onebyone.cli._common import set_threads

    torch.set_num_threads(2)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert set_threads(None) == 2  # the user's setting is kept
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert set_threads(None) == 1 and torch.get_num_threads() == 1
    assert set_threads(3) == 3 and torch.get_num_threads() == 3  # --threads wins


def test_threads_option_sets_torch_and_rejects_bad_values(monkeypatch, capsys, torch_threads):
    import torch

    code, _, _ = run_main(monkeypatch, capsys, "summary", "tutorial_base", "--threads", "3")
    assert code == 0 and torch.get_num_threads() == 3
    for bad in ("0", "-2", "5000"):
        code, _, err = run_main(monkeypatch, capsys, "summary", "tutorial_base", "--threads", bad)
        assert code == 2 and err.startswith("error: --threads") and bad in err, err
        assert len(err.strip().splitlines()) == 1


def test_plural():
    from onebyone.cli._common import plural
    from onebyone.cli._surgery_common import torch_threads_note

    assert plural(1, "thread") == "1 thread" and plural(2, "thread") == "2 threads"
    assert plural(0, "epoch") == "0 epochs" and plural(1_000, "epoch") == "1,000 epochs"
    import torch

    torch.set_num_threads(1)
    assert torch_threads_note().startswith("CPU, 1 thread,")


@pytest.mark.parametrize(("args", "message"), [
    (["summary", "resnet20", "--input", "3x99999999999999999999x2"], "--input dimensions must be at most"),
    (["summary", "resnet20", "--input", "3x9999999999x9999999999"], "--input dimensions must be at most"),
    (["summary", "resnet20", "--input", "3x2000000000x2000000000", "--batch", "2000000000"],
     "elements, more than 2^60"),
    (["summary", "resnet50", "--input", "3x100000x100000", "--device", "cpu"],
     "a real forward at input 1x3x100000x100000 needs about"),
    (["plan", "resnet20", "--batch", "99999999999999999999999"], "--batch must be"),
    (["summary", "resnet20", "--batch", "99999999999999999999999"], "--batch must be"),
])  # fmt: skip
def test_huge_inputs_are_one_line_not_a_traceback(monkeypatch, capsys, args, message):
    code, out, err = run_main(monkeypatch, capsys, *args)
    assert code == 2 and out == "", err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and message in err, err


def test_a_missing_option_value_names_the_help(monkeypatch, capsys):
    code, _, err = run_main(monkeypatch, capsys, "summary", "resnet20", "--input")
    assert code == 2
    assert err.strip() == "error: Option '--input' requires an argument. (see 'onebyone summary --help')"


def _commands():
    from typer.main import get_command

    return get_command(app).commands


@pytest.mark.parametrize("name", sorted(["compare", "compress", "convolutionalize", "fuse", "models",
                                         "plan", "summary", "tour", "train"]))  # fmt: skip
def test_help_is_plain_and_complete(name):
    result = runner.invoke(app, [name, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0
    assert "<bool>" not in result.output and "{" not in result.output.splitlines()[0]
    if name not in ("compare", "models", "tour"):
        assert result.output.splitlines()[0].endswith("[OPTIONS] MODEL")
    assert max(len(line) for line in result.output.splitlines()) <= 80
    for param in _commands()[name].params:
        assert param.help, f"{name} {param.opts} has no help"


def test_the_same_option_has_the_same_default_everywhere():
    commands = _commands()
    defaults: dict[str, set] = {}
    for name, command in commands.items():
        for param in command.params:
            if (name, param.opts[0]) == ("slim", "--batch-size"):
                # fine-tuning's own default: 16 gives two short epochs of distillation more steps
                assert param.default == 16 and "fine-tuning" in param.help.lower()
                continue
            defaults.setdefault(param.opts[0], set()).add(repr(param.default))
    for option in ("--batch-size", "--seed", "--device", "--threads", "--input", "--data"):
        if option == "--device":  # summary counts on meta by default; the trainers pick CUDA
            continue
        assert len(defaults[option]) == 1, (option, defaults[option])
    train = {p.opts[0]: p for p in commands["train"].params}
    assert not train["--out"].required  # like compare's: runs/NAME by default
    plan = {p.opts[0]: p for p in commands["plan"].params}
    assert "csv" in plan["--format"].help and "markdown" in plan["--format"].help


@pytest.mark.parametrize("fmt", ["csv", "markdown"])
def test_plan_writes_csv_and_markdown(fmt):
    result = runner.invoke(app, ["plan", "tutorial_7x7", "--channels", "64", "--format", fmt])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if not line.startswith("|---")]
    first, second = lines[:2]
    assert "name" in first and "params_before" in first
    # 7*7*512*64 + 64 params before, and a 1x1 to 64 then the 7x7: 32,832 + 200,768 after.
    assert "conv2" in second and "1605696" in second and "233600" in second


def test_plan_with_nothing_to_do_says_why():
    result = runner.invoke(app, ["plan", "tutorial_base", "--channels", "64"])
    assert result.exit_code == 0
    first = result.output.splitlines()[0]
    assert "nothing to do" in first and "skipped" in first, result.output
    assert "Layer (type)" not in result.output


def test_compare_table_fits_80_columns_with_plain_headers_and_whole_values():
    import io

    from rich.console import Console

    from onebyone.cli.compare_cmd import compare_table
    from onebyone.experiments.comparison import CompareReport, VariantResult

    report = CompareReport([
        VariantResult("inception_naive", None, 1_229_878, 994_396_672, 10.7, 1018.25, 0.959, 1016.3),
        VariantResult("inception_reduced", "inception_naive", 455_114, 11_065_088, 1.43, 21.5, 0.814, 17.5),
    ])  # fmt: skip
    buffer = io.StringIO()
    Console(file=buffer, width=80).print(compare_table(report))
    lines = buffer.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 80
    assert lines[0].split() == ["latency", "latency", "test", "train"]
    assert lines[1].split() == ["model", "params", "MACs", "b1", "(ms)", "b64", "(ms)", "accuracy",
                                "time", "(s)"]  # fmt: skip
    assert lines[3].split() == ["inception_naive", "1,229,878", "994.40", "M", "10.70", "1018.2",
                                "95.90%", "1016.3"]  # fmt: skip
