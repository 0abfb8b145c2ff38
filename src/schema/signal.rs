//! WebRTC signalling (`m.bureau.webrtc_offer` / `m.bureau.webrtc_answer`, in the fleet's
//! machine room): one machine's SDP offer to another and the answer.
//!
//! Invariant: the state key is `<offerer>|<target>` (machine localparts, which never contain
//! `|`), so each ordered pair of machines has exactly one current offer and one current answer;
//! a new offer replaces the old. The SDP carries its ICE candidates (no trickle).

use serde::{Deserialize, Serialize};

use super::{WEBRTC_ANSWER, WEBRTC_OFFER};
use crate::naming::{Localpart, NameError};

/// An SDP offer or answer.
///
/// Example:
/// ```json
/// {"kind": "offer", "sdp": "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n…",
///  "created_at": 1718000000000}
/// ```
///
/// ```
/// use bureau::schema::{SignalKind, WebrtcSignal, WEBRTC_OFFER};
///
/// let offer: WebrtcSignal = serde_json::from_str(
///     r#"{"kind": "offer", "sdp": "v=0\r\n", "created_at": 1718000000000}"#,
/// )?;
/// offer.validate()?;
/// assert_eq!(offer.event_type(), WEBRTC_OFFER);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebrtcSignal {
    /// Offer or answer (matches the event type).
    pub kind: SignalKind,
    /// The session description.
    pub sdp: String,
    /// When it was created, in milliseconds since the Unix epoch (stale offers are ignored).
    #[serde(default)]
    pub created_at: u64,
}

/// Whether a [`WebrtcSignal`] is an offer or an answer.
///
/// Example: `"answer"` → [`SignalKind::Answer`].
///
/// ```
/// use bureau::schema::SignalKind;
///
/// assert_eq!(serde_json::from_str::<SignalKind>(r#""answer""#)?, SignalKind::Answer);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalKind {
    /// Sent by the machine that opens the connection.
    Offer,
    /// Sent back by the target.
    Answer,
}

/// Why a signal or its state key cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignalError {
    /// The SDP does not start with `v=0`.
    ///
    /// Example: `""` → `webrtc offer: sdp does not start with "v=0"; put the whole session
    /// description in sdp`.
    #[error(
        "webrtc {kind}: sdp does not start with \"v=0\"; put the whole session description in sdp"
    )]
    BadSdp {
        /// `offer` or `answer`.
        kind: &'static str,
    },

    /// A state key without the `|` between offerer and target.
    ///
    /// Example: `"acme/machine/a"` → `webrtc state key "acme/machine/a": has no '|'; write
    /// <offerer>|<target>, like acme/machine/a|acme/machine/b`.
    #[error(
        "webrtc state key {key:?}: has no '|'; write <offerer>|<target>, like \
         acme/machine/a|acme/machine/b"
    )]
    MissingSeparator {
        /// The state key.
        key: String,
    },

    /// One side of the state key is not a localpart.
    ///
    /// Example: `"A|b"` → `webrtc state key "A|b": offerer: localpart "A": character 'A' at
    /// byte 0 is not allowed; …`.
    #[error("webrtc state key {key:?}: {side}: {reason}")]
    BadMachine {
        /// The state key.
        key: String,
        /// `offerer` or `target`.
        side: &'static str,
        /// What is wrong with it.
        reason: NameError,
    },
}

impl SignalKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Offer => "offer",
            Self::Answer => "answer",
        }
    }
}

impl WebrtcSignal {
    /// The event type this signal is sent as.
    ///
    /// Example: kind `answer` → `m.bureau.webrtc_answer`.
    ///
    /// ```
    /// use bureau::schema::{SignalKind, WebrtcSignal, WEBRTC_ANSWER};
    ///
    /// let answer = WebrtcSignal { kind: SignalKind::Answer, sdp: "v=0\r\n".into(), created_at: 0 };
    /// assert_eq!(answer.event_type(), WEBRTC_ANSWER);
    /// ```
    pub fn event_type(&self) -> &'static str {
        match self.kind {
            SignalKind::Offer => WEBRTC_OFFER,
            SignalKind::Answer => WEBRTC_ANSWER,
        }
    }

    /// Checks the SDP starts with `v=0` (every session description does).
    ///
    /// Example: `"sdp": "hello"` → `Err(webrtc offer: sdp does not start with "v=0"; …)`.
    ///
    /// ```
    /// use bureau::schema::{SignalKind, WebrtcSignal};
    ///
    /// let offer = WebrtcSignal { kind: SignalKind::Offer, sdp: "hello".into(), created_at: 0 };
    /// assert!(offer.validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<(), SignalError> {
        if self.sdp.starts_with("v=0") {
            Ok(())
        } else {
            Err(SignalError::BadSdp {
                kind: self.kind.as_str(),
            })
        }
    }
}

/// The state key of the signals from `offerer` to `target`: `<offerer>|<target>`.
///
/// Example: (`acme/machine/a`, `acme/machine/b`) → `acme/machine/a|acme/machine/b`.
///
/// ```
/// use bureau::naming::Localpart;
/// use bureau::schema::webrtc_state_key;
///
/// let key = webrtc_state_key(&Localpart::parse("acme/machine/a")?, &Localpart::parse("acme/machine/b")?);
/// assert_eq!(key, "acme/machine/a|acme/machine/b");
/// # Ok::<(), bureau::naming::NameError>(())
/// ```
pub fn webrtc_state_key(offerer: &Localpart, target: &Localpart) -> String {
    format!("{offerer}|{target}")
}

/// Splits a signal's state key into (offerer, target), validating both.
///
/// Example: `"acme/machine/a|acme/machine/b"` → (`acme/machine/a`, `acme/machine/b`);
/// `"acme/machine/a"` → `Err(webrtc state key "acme/machine/a": has no '|'; …)`.
///
/// ```
/// use bureau::schema::parse_webrtc_state_key;
///
/// let (offerer, target) = parse_webrtc_state_key("acme/machine/a|acme/machine/b")?;
/// assert_eq!((offerer.as_str(), target.as_str()), ("acme/machine/a", "acme/machine/b"));
/// # Ok::<(), bureau::schema::SignalError>(())
/// ```
pub fn parse_webrtc_state_key(key: &str) -> Result<(Localpart, Localpart), SignalError> {
    let Some((offerer, target)) = key.split_once('|') else {
        return Err(SignalError::MissingSeparator {
            key: key.to_owned(),
        });
    };
    let side = |side: &'static str, text: &str| {
        Localpart::parse(text).map_err(|reason| SignalError::BadMachine {
            key: key.to_owned(),
            side,
            reason,
        })
    };
    Ok((side("offerer", offerer)?, side("target", target)?))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::test_support::{parse_error, round_trip, tolerates_unknown_fields};
    use super::*;

    fn offer_json() -> serde_json::Value {
        json!({
            "kind": "offer",
            "sdp": "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\n",
            "created_at": 1_718_000_000_000_u64
        })
    }

    #[test]
    fn offers_and_answers_round_trip() {
        let offer: WebrtcSignal = round_trip(offer_json());
        offer.validate().unwrap();
        assert_eq!(offer.event_type(), "m.bureau.webrtc_offer");
        let mut answer_json = offer_json();
        answer_json["kind"] = json!("answer");
        let answer: WebrtcSignal = round_trip(answer_json);
        assert_eq!(answer.event_type(), "m.bureau.webrtc_answer");
        tolerates_unknown_fields::<WebrtcSignal>(offer_json());
    }

    #[test]
    fn refuses_an_unknown_kind() {
        let mut json = offer_json();
        json["kind"] = json!("pranswer");
        let error = parse_error::<WebrtcSignal>(json);
        assert!(error.contains("unknown variant `pranswer`"), "{error}");
    }

    #[test]
    fn refuses_sdp_that_is_not_a_session_description() {
        let answer = WebrtcSignal {
            kind: SignalKind::Answer,
            sdp: String::new(),
            created_at: 0,
        };
        assert_eq!(
            answer.validate().unwrap_err().to_string(),
            "webrtc answer: sdp does not start with \"v=0\"; put the whole session description in \
             sdp"
        );
    }

    #[test]
    fn state_keys_join_and_split() {
        let offerer = Localpart::parse("acme/fleet/prod/machine/a").unwrap();
        let target = Localpart::parse("acme/fleet/prod/machine/b").unwrap();
        let key = webrtc_state_key(&offerer, &target);
        assert_eq!(key, "acme/fleet/prod/machine/a|acme/fleet/prod/machine/b");
        assert_eq!(parse_webrtc_state_key(&key).unwrap(), (offerer, target));
    }

    #[test]
    fn refuses_a_state_key_without_a_separator() {
        assert_eq!(
            parse_webrtc_state_key("acme/machine/a")
                .unwrap_err()
                .to_string(),
            "webrtc state key \"acme/machine/a\": has no '|'; write <offerer>|<target>, like \
             acme/machine/a|acme/machine/b"
        );
    }

    #[test]
    fn refuses_a_state_key_with_a_bad_machine() {
        let reason = Localpart::parse("B").unwrap_err();
        assert_eq!(
            parse_webrtc_state_key("a|B").unwrap_err().to_string(),
            format!("webrtc state key \"a|B\": target: {reason}")
        );
        let reason = Localpart::parse("").unwrap_err();
        assert_eq!(
            parse_webrtc_state_key("|b").unwrap_err().to_string(),
            format!("webrtc state key \"|b\": offerer: {reason}")
        );
    }
}
