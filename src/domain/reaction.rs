//! Reactions: the emoji a user may react with, and a message's reactions as the contract
//! lists them.

use std::sync::Arc;

use icu_properties::props::{BinaryProperty, EnumeratedProperty, ExtendedPictographic};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{ParseError, UserRef};

/// Most distinct reactions one message holds.
pub const MAX_REACTIONS: usize = 20;

/// Most users listed for one reaction (the first to add it); `count` says how many hold it.
pub const MAX_REACTION_USERS: usize = 20;

/// Most Unicode scalar values in one reaction.
const MAX_EMOJI_CHARS: usize = 8;

/// A reaction: 1..=8 Unicode scalar values, none ASCII, whitespace or a control character
/// (general category `Cc`), at least one `Extended_Pictographic` or a regional indicator.
/// So any emoji, flag, skin tone or ZWJ sequence passes, and text does not.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Emoji(Arc<str>);

impl Emoji {
    /// Checks the rule above.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let n = s.chars().count();
        let allowed = |c: char| {
            !c.is_ascii()
                && !c.is_whitespace()
                && icu_properties::props::GeneralCategory::for_char(c)
                    != icu_properties::props::GeneralCategory::Control
        };
        let pictographic =
            |c: char| ExtendedPictographic::for_char(c) || ('\u{1F1E6}'..='\u{1F1FF}').contains(&c);
        if (1..=MAX_EMOJI_CHARS).contains(&n)
            && s.chars().all(allowed)
            && s.chars().any(pictographic)
        {
            Ok(Self(Arc::from(s)))
        } else {
            Err(ParseError::Reaction)
        }
    }

    /// The emoji as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checked again when read back (the writer reads the reactions it stored).
impl<'de> Deserialize<'de> for Emoji {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Whether a reaction request adds or takes back the caller's reaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReactionAction {
    /// `PUT`.
    Add,
    /// `DELETE`.
    Remove,
}

/// One emoji on a message: how many hold it, and the first of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Reaction {
    /// The emoji.
    #[schema(value_type = String)]
    pub emoji: Emoji,
    /// How many users hold it now (exact).
    pub count: i64,
    /// The first [`MAX_REACTION_USERS`] of them, in the order they added it.
    pub users: Vec<UserRef>,
}

/// A message's reactions as the contract's list (emoji whose count is above 0, in the order
/// each was last added to it), held as the JSON text the writer stored. Answers copy it as
/// is: a page of reaction-heavy messages is not parsed into thousands of values only to be
/// written out again.
#[derive(Debug, Clone)]
pub struct Reactions(Box<RawValue>);

impl Reactions {
    /// No reactions: `[]`.
    pub fn none() -> Self {
        Self::from_list(&[])
    }

    /// The list, as JSON.
    pub fn from_list(list: &[Reaction]) -> Self {
        // A list of plain structs always serializes, and always to valid JSON.
        let text = serde_json::to_string(list).unwrap_or_else(|_| "[]".to_owned());
        Self(RawValue::from_string(text).unwrap_or_else(|_| empty_list()))
    }

    /// Stored JSON text, checked to be JSON.
    pub fn from_json(text: String) -> serde_json::Result<Self> {
        RawValue::from_string(text).map(Self)
    }

    /// The list, parsed.
    pub fn list(&self) -> serde_json::Result<Vec<Reaction>> {
        serde_json::from_str(self.0.get())
    }

    /// The JSON text.
    pub fn as_json(&self) -> &str {
        self.0.get()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.get() == "[]"
    }
}

fn empty_list() -> Box<RawValue> {
    RawValue::from_string("[]".to_owned()).expect("`[]` is JSON")
}

impl Default for Reactions {
    fn default() -> Self {
        Self::none()
    }
}

impl PartialEq for Reactions {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}

impl Eq for Reactions {}

impl Serialize for Reactions {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emoji_flags_skin_tones_and_zwj_sequences_are_reactions() {
        for ok in [
            "👍",
            "❤️",
            "🇫🇷",
            "👍🏽",
            "👩‍👩‍👧‍👦",
            "🏳️‍🌈",
            "🥳",
            "©",
            "🇦",
            "👍👍👍👍👍👍👍👍",
        ] {
            assert!(Emoji::parse(ok).is_ok(), "{ok:?} should be a reaction");
        }
    }

    #[test]
    fn text_ascii_whitespace_controls_and_long_runs_are_not() {
        for bad in [
            "",
            "+1",
            "a",
            "1️⃣",
            "é",
            "日本",
            "👍 ",
            "👍\u{0085}",
            "\u{00A0}👍",
            "👍👍👍👍👍👍👍👍👍",
            "\u{200D}",
            "\u{FE0F}",
            "🏽",
        ] {
            assert!(
                Emoji::parse(bad).is_err(),
                "{bad:?} should not be a reaction"
            );
        }
    }

    #[test]
    fn reactions_serialize_as_the_stored_json() {
        let r =
            Reactions::from_json(r#"[{"emoji":"👍","count":1,"users":[]}]"#.into()).expect("JSON");
        assert_eq!(
            serde_json::to_string(&r).expect("serializes"),
            r#"[{"emoji":"👍","count":1,"users":[]}]"#
        );
        assert_eq!(r.list().expect("a list")[0].count, 1);
        assert!(Reactions::none().is_empty());
        assert!(Reactions::from_json("{not json".into()).is_err());
    }
}
