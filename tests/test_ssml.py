"""SSML: the subset is read into text and pauses, tags are never spoken, and every front end gets it via the service."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from helpers import read, run_cli
from speakcli.cli import main
from speakcli.errors import ExitStatus, UsageError
from speakcli.service import SpeechService
from speakcli.settings import load_settings
from speakcli.ssml import MAX_DEPTH, Pause, Plan, Span, is_ssml, parse, speech_plan
from speakcli.testing import FakeEngine


def _service(engine: FakeEngine, monkeypatch: pytest.MonkeyPatch) -> SpeechService:
    from speakcli import engines

    monkeypatch.setitem(engines._REGISTRY, "fake", lambda spec: engine)
    return SpeechService(load_settings({"engine": "piper"}), engines.EngineSpec("fake"))


def test_break_time_and_strength_become_pauses_between_spans() -> None:
    plan = parse(
        '<speak>Hello <break time="2s"/> there. <break time="250ms"/>Now<break/>and <break strength="x-strong"/> then</speak>'
    )
    assert plan.parts == [
        Span("Hello"),
        Pause(2.0),
        Span("there."),
        Pause(0.25),
        Span("Now"),
        Pause(0.5),
        Span("and"),
        Pause(1.0),
        Span("then"),
    ]


def test_paragraphs_sentences_prosody_say_as_and_sub() -> None:
    plan = parse(
        '<?xml version="1.0"?><speak xmlns="http://www.w3.org/2001/10/synthesis" version="1.0">'
        '<p><s>One.</s><s>Two</s></p><p>Three <prosody rate="x-slow">slowly <prosody rate="150%">fast</prosody>'
        '</prosody> done, call <say-as interpret-as="characters">IBM</say-as> about '
        '<say-as interpret-as="cardinal">1,234,567</say-as> <sub alias="World Wide Web">WWW</sub>.</p></speak>'
    )
    assert plan.parts == [
        Span("One."),
        Span("Two"),  # <s> ends a span: never joined to the next sentence
        Pause(0.75),  # between paragraphs only, not after the last one
        Span("Three"),
        Span("slowly", 0.5),
        Span("fast", 0.75),  # nested rates multiply
        Span("done, call I B M about 1234567 World Wide Web."),
    ]
    assert plan.ignored == []


@pytest.mark.parametrize(
    ("rate", "factor"), [("slow", 0.75), ("80%", 0.8), ("+20%", 1.2), ("-50%", 0.5), ("1.5", 1.5), ("medium", 1.0)]
)
def test_prosody_rates(rate: str, factor: float) -> None:
    assert parse(f'<speak><prosody rate="{rate}">x</prosody></speak>').parts == [Span("x", factor)]


def test_unknown_tags_are_dropped_with_one_warning_and_their_text_kept(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="speakcli"):
        plan = parse(
            '<speak><emphasis>Very</emphasis> <voice name="x">nice</voice> <emphasis>indeed</emphasis>'
            '<prosody pitch="high">.</prosody></speak>'
        )
    assert plan.parts == [Span("Very nice indeed.")]
    assert plan.ignored == ["<emphasis>", "<voice>", "prosody pitch"]
    assert len(caplog.records) == 1
    assert "<emphasis>, <voice>, prosody pitch" in caplog.records[0].getMessage()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<speak>Hello <break></speak>", "not well-formed"),
        ("<speak>a</speak> trailing", "not well-formed"),
        ('<speak><break time="soon"/></speak>', "seconds or milliseconds"),
        ('<speak><break time="60s"/></speak>', "longer than 10 s"),
        ('<speak><break strength="huge"/></speak>', "use one of none"),
        ('<speak><prosody rate="zippy">x</prosody></speak>', "x-slow"),
        ('<speak><prosody rate="0%">x</prosody></speak>', "above 0"),
    ],
)
def test_bad_markup_is_a_usage_error(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse(text)


def test_ssml_is_recognised_by_its_speak_element_only() -> None:
    assert is_ssml("  <speak>x</speak>") and is_ssml('<?xml version="1.0"?>\n<speak version="1.0">x</speak>')
    assert not is_ssml("<speaker> said hi") and not is_ssml("I <speak> up")
    assert not is_ssml("<!-- unclosed <speak>x</speak>") and not is_ssml("<!DOCTYPE html><html>x</html>")
    assert not is_ssml("\ufeffHello <speak>") and not is_ssml('<!DOCTYPE foo [<!ENTITY a "b">]><foo/>')
    assert speech_plan("a <b>c</b>").parts == [Span("a <b>c</b>")]  # plain text stays plain, tags and all
    assert speech_plan("a <b>c</b>", ssml=True).parts == [Span("a c")]  # a fragment given as SSML is wrapped


# The W3C SSML 1.1 specification's example document, in its structure: XML declaration, DOCTYPE, a namespaced
# <speak> with a schema location and xml:lang, a paragraph of sentences with a break and a prosody rate.
W3C_EXAMPLE = """<?xml version="1.0"?>
<!DOCTYPE speak PUBLIC "-//W3C//DTD SYNTHESIS 1.1//EN"
                  "http://www.w3.org/TR/speech-synthesis11/synthesis.dtd">
<speak version="1.1"
       xmlns="http://www.w3.org/2001/10/synthesis"
       xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
       xsi:schemaLocation="http://www.w3.org/2001/10/synthesis
                 http://www.w3.org/TR/speech-synthesis11/synthesis.xsd"
       xml:lang="en-US">
  <p>
    <s>You have 4 new messages.</s>
    <s>The first is from Stephanie Williams and arrived at <break/> 3:45pm.
    </s>
    <s>
      The subject is <prosody rate="-20%">ski trip</prosody>
    </s>
  </p>
</speak>
"""
W3C_PLAN = [
    Span("You have 4 new messages."),
    Span("The first is from Stephanie Williams and arrived at"),
    Pause(0.5),
    Span("3:45pm."),
    Span("The subject is"),
    Span("ski trip", 0.8),
]


@pytest.mark.parametrize(
    "document",
    [
        W3C_EXAMPLE,
        "<!-- a note for the author -->\n<speak>Hi <break/> there.</speak>",
        "\ufeff<speak>Hi <break/> there.</speak>",
        '\ufeff <?xml version="1.0" encoding="UTF-8"?><!-- a --><?style x?>\r\n<!-- b --><!DOCTYPE speak>'
        "<speak>Hi <break/> there.</speak><!-- trailing -->\n",
    ],
    ids=["w3c", "comment", "bom", "all"],
)
def test_a_standard_document_is_recognised_and_parsed_with_or_without_ssml_true(document: str) -> None:
    expected = W3C_PLAN if document is W3C_EXAMPLE else [Span("Hi"), Pause(0.5), Span("there.")]
    assert is_ssml(document)
    assert speech_plan(document).parts == expected  # recognised: never read aloud as markup
    assert speech_plan(document, ssml=True).parts == expected  # --ssml: well-formed, so never "not well-formed"


@pytest.mark.parametrize(
    "document",
    [
        # billion laughs
        '<?xml version="1.0"?><!DOCTYPE speak [<!ENTITY a "ha"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
        '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><speak>&c;</speak>',
        # XXE: an entity that reads a local file
        '<!DOCTYPE speak [<!ENTITY x SYSTEM "file:///etc/hostname">]>\n<speak>&x;</speak>',
        # the subset behind an external id, no space before it, and behind a comment
        '<!-- x --><!DOCTYPE speak SYSTEM "synthesis.dtd"[<!ENTITY x "secret">]><speak>&x;</speak>',
    ],
    ids=["laughs", "xxe", "external-id"],
)
def test_a_doctype_that_declares_entities_is_refused_and_nothing_is_expanded(document: str) -> None:
    assert is_ssml(document)  # SSML, refused: not plain text read aloud with its declarations
    for ssml in (None, True):
        with pytest.raises(UsageError, match=r"internal subset, \[\.\.\.\]\), which speakcli never reads"):
            speech_plan(document, ssml)


def test_an_entity_from_an_external_dtd_is_never_fetched_it_is_undefined(tmp_path: Path) -> None:
    dtd = tmp_path / "evil.dtd"
    dtd.write_text('<!ENTITY x "from the dtd">')
    document = f'<!DOCTYPE speak SYSTEM "{dtd.as_uri()}">\n<speak>a &x; b</speak>'
    with pytest.raises(UsageError, match=r"not well-formed \(undefined entity: line 2, column 9\)"):
        parse(document)
    assert speech_plan("<!DOCTYPE speak>\n<speak>a &amp; &#66;</speak>").parts == [Span("a & B")]


def test_nesting_is_bounded_with_a_usage_error_not_a_crash() -> None:
    def nested(depth: int) -> str:  # <speak> is level 1
        return "<speak>" + "<s>" * (depth - 1) + "x" + "</s>" * (depth - 1) + "</speak>"

    assert parse(nested(MAX_DEPTH)).parts == [Span("x")]
    for depth in (MAX_DEPTH + 1, 2000, 200_000):
        with pytest.raises(UsageError, match=f"nests elements more than {MAX_DEPTH} deep; flatten the markup"):
            parse(nested(depth))
    deep_say_as = (
        "<speak><say-as interpret-as='characters'>" + "<s>" * 2000 + "ab" + "</s>" * 2000 + "</say-as></speak>"
    )
    with pytest.raises(UsageError, match="deep"):
        parse(deep_say_as)  # say-as reads its text recursively too


def test_the_service_speaks_the_text_never_the_tags_and_makes_the_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = FakeEngine(sample_rate=1000)
    with _service(engine, monkeypatch) as service:
        opts = service.options()
        chunks = list(service.speak('<speak>Hello <break time="2s"/> <foo>there</foo>.</speak>', None, opts))
        assert engine.texts == ["Hello", "there."]
        audio = np.concatenate(chunks)
        edges = np.flatnonzero(np.diff(np.concatenate([[0], (audio == 0).astype(np.int8), [0]])))
        silences = [int(end - start) for start, end in zip(edges[::2], edges[1::2], strict=True)]
        # The break replaces the usual pause between sentences: one silence of 2 s, give or take the zero sample
        # that ends a fade on either side of it (fades leave only such single zeros elsewhere).
        longer = [n for n in silences if n > 1]
        assert len(longer) == 1 and 2000 <= longer[0] <= 2002, silences
        progress: list[tuple[int, int]] = []
        list(service.speak(Plan([Span("One. Two.")]), None, opts, on_progress=lambda d, t: progress.append((d, t))))
        assert progress == [(0, 2), (1, 2), (2, 2)]
        with pytest.raises(UsageError, match="no text to speak"):
            service.speak('<speak><break time="1s"/></speak>', None, opts)


def _seconds(path: Path) -> float:
    audio, rate = read(path)
    return len(audio) / rate


@pytest.mark.slow
def test_say_with_a_break_gives_that_much_more_audio_and_speaks_no_tag(tmp_path: Path) -> None:
    texts = {
        "plain": "Hello there.",
        "tags": "<speak>Hello there.</speak>",
        "break": '<speak>Hello <break time="2s"/> there.</speak>',
    }
    for name, text in texts.items():
        assert main(["say", text, "--engine", "piper", "-q", "-o", str(tmp_path / f"{name}.wav")]) == 0
    plain, tags, pause = (_seconds(tmp_path / f"{n}.wav") for n in texts)
    assert abs(tags - plain) < 0.15 * plain  # the markup is not read aloud (it was 3.6 s against 0.8 s)
    assert 1.8 < pause - plain < 2.6  # 2 s of silence, plus the ends of two pieces instead of one
    audio, rate = read(tmp_path / "break.wav")
    quiet = np.abs(audio) < 1e-4
    longest = max(len(run) for run in np.split(quiet, np.flatnonzero(~quiet)))
    assert longest > 1.9 * rate  # the silence is one piece, not spread out


@pytest.mark.slow
def test_prosody_rate_slows_the_span_down(tmp_path: Path) -> None:
    text = "A sentence of a certain length to time."
    for name, ssml in (("normal", text), ("slow", f'<speak><prosody rate="x-slow">{text}</prosody></speak>')):
        assert main(["say", ssml, "--engine", "piper", "-q", "-o", str(tmp_path / f"{name}.wav")]) == 0
    assert 1.6 < _seconds(tmp_path / "slow.wav") / _seconds(tmp_path / "normal.wav") < 2.4  # x-slow is half the rate


@pytest.mark.slow
def test_cli_malformed_ssml_is_one_line_exit_2_and_unknown_tags_one_warning() -> None:
    bad = run_cli("say", "<speak>Hello <break></speak>", "--engine", "piper", "-o", "x.wav")
    assert bad.returncode == ExitStatus.USAGE
    assert bad.stderr.decode().strip().splitlines() == [
        "speakcli: error: the SSML is not well-formed (mismatched tag: line 1, column 22); fix the markup, or pass "
        "plain text"
    ]
    ok = run_cli(
        "say", "<speak><em>Hi</em> <foo>there</foo>, <em>you</em>.</speak>", "--engine", "piper", "-o", "x.wav"
    )
    assert ok.returncode == 0, ok.stderr
    warnings = [ln for ln in ok.stderr.decode().splitlines() if "warning" in ln]
    assert warnings == ["speakcli: warning: SSML: ignored <em>, <foo> (not supported; their text is spoken)"]


@pytest.mark.slow
def test_cli_reads_the_w3c_example_with_or_without_ssml_and_deep_nesting_is_one_line_exit_2(tmp_path: Path) -> None:
    for flags in ((), ("--ssml",)):
        out = tmp_path / f"w3c{len(flags)}.wav"
        done = run_cli("say", W3C_EXAMPLE, *flags, "--engine", "piper", "--no-server", "-q", "-o", str(out))
        assert done.returncode == 0, done.stderr
        assert done.stderr == b""  # no warning: every element of the example is in the subset
        assert 4 < _seconds(out) < 20  # the sentences (9.4 s here), not the markup read aloud (74 s)
    deep = "<speak>" + "<s>" * 2000 + "x" + "</s>" * 2000 + "</speak>"
    bad = run_cli("say", deep, "--engine", "piper", "--no-server", "-o", str(tmp_path / "deep.wav"))
    assert bad.returncode == ExitStatus.USAGE
    assert bad.stderr.decode().splitlines() == [
        f"speakcli: error: the SSML nests elements more than {MAX_DEPTH} deep; flatten the markup"
    ]
