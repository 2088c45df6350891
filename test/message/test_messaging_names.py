"""Unknown fields and message types: "did you mean" when something close exists."""
from __future__ import annotations

import pytest

import pyuftp
from pyuftp.message.catalog import MESSAGES
from pyuftp.message.check import suggest
from pyuftp.message.examples import example, flex_offer_96

FLEX_OFFER_FIELDS = ", ".join(MESSAGES["3.1.0"]["FlexOffer"].keys())


def _error(message_type, payload):
    with pytest.raises(pyuftp.ValidationError) as caught:
        pyuftp.create_message(message_type, payload)
    return caught.value


def test_a_misspelled_field_is_named_with_the_one_meant():
    payload = example("FlexOffer")
    payload["isp_durations"] = payload.pop("isp_duration")
    error = _error("FlexOffer", payload)
    assert error.field == "FlexOffer.isp_durations"
    assert str(error) == ("FlexOffer.isp_durations: unknown field; did you mean 'isp_duration'? "
                          f"The fields here are {FLEX_OFFER_FIELDS}")


def test_a_misspelled_field_in_a_nested_dict():
    payload = example("FlexOffer")
    option = payload["offer_options"][0]
    option["prise"] = option.pop("price")
    error = _error("FlexOffer", payload)
    assert str(error) == ("FlexOffer.offer_options[0].prise: unknown field; did you mean 'price'? "
                          "The fields here are option_reference, price, min_activation_factor, isps")


def test_a_misspelled_field_in_a_long_list():
    payload = flex_offer_96()
    isp = payload["offer_options"][0]["isps"][41]
    isp["pwer"] = isp.pop("power")
    error = _error("FlexOffer", payload)
    assert str(error) == ("FlexOffer.offer_options[0].isps[41].pwer: unknown field; "
                          "did you mean 'power'? The fields here are power, start, duration")


@pytest.mark.parametrize("written,meant", [
    ("IspDuration", "isp_duration"), ("ISP-Duration", "isp_duration"),
    ("timezone", "time_zone"), ("SenderDomain", "sender_domain"), ("periode", "period"),
    ("offer_option", "offer_options"),
])
def test_other_spellings_of_a_field(written, meant):
    payload = example("FlexOffer")
    payload[written] = payload.pop(meant)
    assert f"did you mean '{meant}'?" in _error("FlexOffer", payload).reason


def test_no_suggestion_without_a_close_field():
    payload = example("FlexOffer")
    payload["colour"] = "red"
    error = _error("FlexOffer", payload)
    assert str(error) == f"FlexOffer.colour: unknown field; the fields here are {FLEX_OFFER_FIELDS}"


def test_no_suggestion_of_a_field_that_is_already_there():
    payload = example("FlexOffer")
    payload["offer_options"][0]["prise"] = 12
    error = _error("FlexOffer", payload)
    assert error.field == "FlexOffer.offer_options[0].prise"
    assert "did you mean" not in error.reason


@pytest.mark.parametrize("written,meant", [
    ("flex_offer", "FlexOffer"), ("flexoffer", "FlexOffer"), ("FLEX-OFFER", "FlexOffer"),
    ("d_prognosis", "D-Prognosis"), ("DPrognosis", "D-Prognosis"),
    ("d_prognosis_response", "D-PrognosisResponse"), ("agr_portfolio_query", "AGRPortfolioQuery"),
    ("FlexOfer", "FlexOffer"), ("flexofferresp", "FlexOfferResponse"),
    ("signed_message", "SignedMessage"),
])
def test_a_misspelled_message_type_is_named_with_the_one_meant(written, meant):
    expected = f"{written!r} is not a UFTP message type; did you mean {meant!r}?"
    with pytest.raises(pyuftp.UnknownMessageType) as caught:
        pyuftp.create_message(written, example(meant if meant != "SignedMessage" else "TestMessage"))
    assert str(caught.value) == expected
    with pytest.raises(pyuftp.UnknownMessageType) as caught:
        pyuftp.check_payload(written, {}, "3.1.0")
    assert str(caught.value) == expected


@pytest.mark.parametrize("written", ["Nonsense", "Test", "", "12345"])
def test_no_suggestion_without_a_close_message_type(written):
    with pytest.raises(pyuftp.UnknownMessageType) as caught:
        pyuftp.create_message(written, {})
    text = str(caught.value)
    assert text.startswith(f"{written!r} is not a UFTP message type; known types: ")
    assert "did you mean" not in text and "FlexOffer, FlexOfferResponse" in text


def test_a_message_type_that_is_not_a_str():
    with pytest.raises(pyuftp.UnknownMessageType, match="must be a str"):
        pyuftp.check_payload(17, {}, "3.1.0")  # type: ignore[arg-type]


def test_suggest():
    assert suggest("flex_offer", ["FlexOffer", "FlexOrder"]) == "FlexOffer"
    assert suggest("zzz", ["FlexOffer", "FlexOrder"]) is None
    assert suggest(5, ["FlexOffer"]) is None
    assert suggest("x", []) is None
