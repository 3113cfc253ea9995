"""Log lines: text or JSON (python-json-logger), one per event, with the job's fields; a known secret
never gets through, wherever in a record it hides (message, arguments, extra fields, traceback)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from service import logs

SECRET = "Pw-2b7e151628aed2a6-canary"


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, dict[str, io.StringIO]]]:
    logs.REDACTOR.update([SECRET])
    streams = {fmt: io.StringIO() for fmt in logs.FORMATS}
    logger = logging.getLogger("tests.service.logs")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handlers = [logs.make_handler(fmt, stream) for fmt, stream in streams.items()]
    for handler in handlers:
        logger.addHandler(handler)
    yield logger, streams
    for handler in handlers:
        logger.removeHandler(handler)


def test_a_secret_is_masked_in_message_arguments_extras_and_traceback(logged) -> None:
    logger, streams = logged
    logger.info(f"login with {SECRET}")
    logger.warning("url %s", f"postgresql://bw:{SECRET}@db/bw", extra={"source": f"saba {SECRET}"})
    try:
        raise RuntimeError(f"portal refused {SECRET}")
    except RuntimeError:
        logger.exception("sync failed")
    for fmt, stream in streams.items():
        text = stream.getvalue()
        assert SECRET not in text, fmt
        # text lines do not show extra fields; JSON lines do
        assert text.count(logs.MASK) >= (4 if fmt == "json" else 3), (fmt, text)
    assert "RuntimeError: portal refused ***" in streams["text"].getvalue()


def test_json_lines_carry_the_event_fields(logged) -> None:
    logger, streams = logged
    logger.info("incremental sync of saba run 7: success", extra={"job": "sync:saba", "source": "saba", "run_id": 7,
                                                                   "status": "success"})
    logger.info("گزارش: ۱۲ انحراف")
    first, second = [json.loads(line) for line in streams["json"].getvalue().splitlines()]
    assert first["message"] == "incremental sync of saba run 7: success"
    assert (first["job"], first["source"], first["run_id"], first["status"]) == ("sync:saba", "saba", 7, "success")
    assert first["level"] == "INFO" and first["logger"] == "tests.service.logs" and first["time"]
    # in Tehran with its offset, as the schedule's next runs are given (trial: UTC without a zone)
    logged_at = datetime.fromisoformat(first["time"])
    assert logged_at.utcoffset() == timedelta(hours=3, minutes=30)
    assert abs((logged_at - datetime.now(UTC)).total_seconds()) < 60
    assert streams["text"].getvalue().split(" ")[0] == datetime.fromisoformat(
        streams["text"].getvalue().split(" ")[0]).isoformat(timespec="milliseconds")
    assert second["message"] == "گزارش: ۱۲ انحراف"  # Persian stays readable, not \u-escaped
    assert streams["text"].getvalue().splitlines()[0].endswith("INFO tests.service.logs: incremental sync of saba "
                                                               "run 7: success")


def test_short_values_are_not_treated_as_secrets() -> None:
    redactor = logs.Redactor()
    redactor.update(["abc", None, ""])
    assert redactor.redact("abc 123") == "abc 123"


def test_the_log_format_option_refuses_an_unknown_format(capsys) -> None:
    from budgetwatch.cli import main

    assert main(["--log-format", "xml", "status"]) == 2
    assert "use text or json" in capsys.readouterr().err
