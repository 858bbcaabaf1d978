"""Records and renderings: offsets point at the right text in ChatML and plain text."""
import json

import pytest

from hsa_memory.training.data.records import Example, Message, Question


def example():
    return Example("demo", 1, [
        Message("user", "My cat is called Tom.", "m0", "2024-01-01T09:00", "s00"),
        Message("assistant", "Noted!", "m1", "2024-01-01T09:01", "s00"),
        Message("tool", '{"code": "X1"}', "m2", "2024-01-02T10:00", "s01"),
    ], [
        Question("What is my cat called?", "Tom", ["m0"], "static", "Your cat is called Tom."),
        Question("Which code?", "X1", ["m2"], "tool"),
    ])


def test_chatml_layout_and_spans():
    ex = example()
    r = ex.to_chatml(system="Be brief.")
    assert r.text.startswith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nMy cat")
    for message in ex.messages:
        assert r.span_text(r.messages[message.id]) == message.content
    assert [r.span_text(s) for s in r.questions] == ["What is my cat called?", "Which code?"]
    assert [r.span_text(s) for s in r.responses] == ["Your cat is called Tom.", "X1"]
    assert [r.span_text(s) for s in r.answers] == ["Tom", "X1"]
    assert r.text.endswith("<|im_start|>assistant\nX1<|im_end|>\n")


def test_chatml_with_time_keeps_spans_on_content():
    r = example().to_chatml(with_time=True, questions=False)
    assert "user\n[2024-01-01T09:00] My cat" in r.text
    assert r.span_text(r.messages["m0"]) == "My cat is called Tom."
    assert r.answers == []


def test_plain_text_spans():
    r = example().to_text()
    assert r.text.startswith("My cat is called Tom.\nNoted!\n\n{")
    assert r.span_text(r.answers[0]) == "Tom"
    assert r.span_text(r.messages["m2"]) == '{"code": "X1"}'


def test_dict_round_trip_through_json():
    ex = example()
    assert Example.from_dict(json.loads(json.dumps(ex.to_dict()))) == ex


def test_reply_without_the_answer_is_a_user_error():
    ex = Example("demo", 0, [], [Question("Q?", "yes", [], "static", "No idea.")])
    with pytest.raises(ValueError, match="does not contain the answer 'yes'"):
        ex.to_chatml()


def test_message_lookup():
    assert example().message("m2").role == "tool"
    with pytest.raises(KeyError, match="m9"):
        example().message("m9")
