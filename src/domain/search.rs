//! Words as search sees them, in one place for both backends: a word is a run of Unicode
//! letters and digits (anything else separates words), compared lower-cased. The server
//! splits bodies and queries itself, so SQLite's FTS5 and PostgreSQL's `tsvector` index the
//! same words and a query finds the same messages on either.

use super::ParseError;

/// Longest `q`, in characters.
pub const MAX_QUERY_CHARS: usize = 200;

/// Longest word indexed, in bytes of its lower-cased form: PostgreSQL keeps lexemes below
/// 2 KiB. Such a word is not found (a query cannot name it: `q` is 200 characters).
const MAX_WORD_BYTES: usize = 2046;

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric()
}

/// The words of `text` with their `[start, end)` offsets in code points.
fn words(text: &str) -> impl Iterator<Item = (usize, usize, &str)> {
    let mut chars = text.char_indices().enumerate().peekable();
    std::iter::from_fn(move || {
        // Skip separators.
        while chars.next_if(|(_, (_, c))| !is_word_char(*c)).is_some() {}
        let (start, (from, _)) = chars.next()?;
        let mut end = start + 1;
        let mut to = text.len();
        while let Some((i, (byte, c))) = chars.peek().copied() {
            if !is_word_char(c) {
                to = byte;
                break;
            }
            end = i + 1;
            chars.next();
        }
        Some((start, end, &text[from..to]))
    })
}

/// The distinct lower-cased words of a body, as the search index stores them (space
/// separated by the caller as each backend needs).
pub fn index_words(body: &str) -> Vec<String> {
    let mut out: Vec<String> = words(body)
        .map(|(_, _, w)| w.to_lowercase())
        .filter(|w| w.len() <= MAX_WORD_BYTES)
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// A valid `q`: its lower-cased words, the last of which also matches as a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    words: Vec<String>,
}

impl SearchQuery {
    /// `q` when it is 1..=[`MAX_QUERY_CHARS`] characters holding at least one word.
    pub fn parse(q: &str) -> Result<Self, ParseError> {
        let chars = q.chars().count();
        if chars == 0 || chars > MAX_QUERY_CHARS {
            return Err(ParseError::SearchQuery);
        }
        let mut found: Vec<String> = Vec::new();
        for (_, _, w) in words(q) {
            let w = w.to_lowercase();
            // A repeated word asks nothing more; the last one stays last (it is the prefix).
            found.retain(|earlier| *earlier != w);
            found.push(w);
        }
        if found.is_empty() {
            return Err(ParseError::SearchQuery);
        }
        Ok(Self { words: found })
    }

    /// The words, lower-cased; the last one matches as a prefix too.
    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// The query in FTS5 syntax: each word quoted (words hold no quote), the last one a
    /// prefix query.
    pub fn fts5(&self) -> String {
        let mut out = String::new();
        for w in &self.words {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push('"');
            out.push_str(w);
            out.push('"');
        }
        out.push('*');
        out
    }

    /// The query as PostgreSQL `tsquery` text: lexemes quoted as given (no dictionary is
    /// applied to `::tsquery` input), the last one a prefix.
    pub fn tsquery(&self) -> String {
        let quoted: Vec<String> = self.words.iter().map(|w| format!("'{w}'")).collect();
        format!("{}:*", quoted.join(" & "))
    }

    /// The `[start, end)` code-point offsets of every word of `body` that matches a word
    /// of the query (the last one as a prefix too), ascending.
    pub fn matches(&self, body: &str) -> Vec<[usize; 2]> {
        let Some((last, whole)) = self.words.split_last() else {
            return Vec::new();
        };
        words(body)
            .filter(|(_, _, w)| {
                let w = w.to_lowercase();
                w.starts_with(last.as_str()) || whole.contains(&w)
            })
            .map(|(start, end, _)| [start, end])
            .collect()
    }

    /// Whether `body` holds every word of the query (the last as a prefix): what the
    /// indexes answer, computed here for tests.
    pub fn is_match(&self, body: &str) -> bool {
        let found = index_words(body);
        let Some((last, whole)) = self.words.split_last() else {
            return false;
        };
        whole.iter().all(|w| found.binary_search(w).is_ok())
            && found.iter().any(|w| w.starts_with(last.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_runs_of_letters_and_digits_with_code_point_offsets() {
        let got: Vec<_> = words("héllo, wörld-42 ok").collect();
        assert_eq!(
            got,
            [
                (0, 5, "héllo"),
                (7, 12, "wörld"),
                (13, 15, "42"),
                (16, 18, "ok")
            ]
        );
        assert_eq!(words("  ...  ").count(), 0, "no words in punctuation");
        assert_eq!(
            words("日本語 テスト").count(),
            2,
            "non-Latin letters are words"
        );
    }

    #[test]
    fn a_query_needs_a_word_and_at_most_200_characters() {
        assert!(SearchQuery::parse("").is_err(), "empty");
        assert!(SearchQuery::parse(" ,;! ").is_err(), "no word");
        assert!(SearchQuery::parse(&"a".repeat(201)).is_err(), "201 chars");
        assert!(SearchQuery::parse(&"é".repeat(200)).is_ok(), "200 chars");
        let q = SearchQuery::parse("Deploy the, DEPLOY").expect("query");
        assert_eq!(q.words(), ["the", "deploy"], "lower-cased, last kept last");
    }

    #[test]
    fn matches_cover_whole_words_and_the_last_word_as_a_prefix() {
        let q = SearchQuery::parse("the deplo").expect("query");
        assert_eq!(
            q.matches("The deployment, then THE end"),
            [[0, 3], [4, 14], [21, 24]],
            "`then` is not `the`; `deployment` matches the prefix whole"
        );
        assert!(q.is_match("then the deploy"));
        assert!(!q.is_match("then deploy"), "`the` is a whole word only");
    }

    #[test]
    fn query_texts_quote_each_word() {
        let q = SearchQuery::parse("héllo wor").expect("query");
        assert_eq!(q.fts5(), "\"héllo\" \"wor\"*");
        assert_eq!(q.tsquery(), "'héllo' & 'wor':*");
    }
}
