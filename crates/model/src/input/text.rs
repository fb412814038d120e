//! Text preprocessing: the built-in byte-level vocabulary (`[CLS]` = 256, then the UTF-8 bytes)
//! or, when the model directory holds a `tokenizer.json`, the ids of that HF tokenizer (with its
//! own special tokens). Empty or whitespace-only text and over-long inputs are refused.

use std::path::Path;

use tokenizers::Tokenizer;

use crate::config::{BOS, BYTE_VOCAB, Config};
use crate::error::{Error, Result};

/// The text front end of a [`super::Preprocessor`].
#[derive(Clone, Debug)]
pub(crate) struct TextPrep {
    tokenizer: Option<Tokenizer>,
    max_tokens: usize,
}

impl TextPrep {
    /// The byte vocabulary, or the tokenizer of `tokenizer_json` whose vocabulary (added tokens
    /// included) must fit `config.text.vocab`.
    pub(crate) fn new(config: &Config, tokenizer_json: Option<&Path>) -> Result<Self> {
        let vocab = config.text.vocab;
        let tokenizer = match tokenizer_json {
            None => {
                if vocab < BYTE_VOCAB {
                    return Err(Error::Config(format!(
                        "text.vocab {vocab} is below the {BYTE_VOCAB} ids of the byte vocabulary and no tokenizer.json \
                         was given"
                    )));
                }
                None
            }
            Some(path) => {
                let mut tok = Tokenizer::from_file(path)
                    .map_err(|e| Error::Config(format!("tokenizer {}: cannot load: {e}", path.display())))?;
                // Inputs are packed, never padded: a file's own padding (MiniLM's pads every text
                // to 128) must not apply. Its truncation does: that is the model's published
                // policy (sentence-transformers cuts at max_seq_length).
                tok.with_padding(None);
                let size = tok.get_vocab_size(true);
                if size > vocab {
                    return Err(Error::Config(format!(
                        "tokenizer {}: vocabulary of {size} ids does not fit text.vocab = {vocab}",
                        path.display()
                    )));
                }
                Some(tok)
            }
        };
        Ok(TextPrep { tokenizer, max_tokens: config.limits.max_text_tokens })
    }

    /// The token ids of `text`.
    pub(crate) fn ids(&self, text: &str) -> std::result::Result<Vec<i32>, String> {
        if text.trim().is_empty() {
            return Err(format!("text is empty or only whitespace ({} bytes): expected some text", text.len()));
        }
        let ids = match &self.tokenizer {
            None => byte_ids(text, self.max_tokens)?,
            Some(tok) => tokenizer_ids(tok, text)?,
        };
        if ids.len() > self.max_tokens {
            return Err(format!("text has {} tokens, over limits.max_text_tokens = {}", ids.len(), self.max_tokens));
        }
        Ok(ids)
    }
}

/// `[CLS]` followed by the UTF-8 bytes; refused before allocating when over `max_tokens`.
fn byte_ids(text: &str, max_tokens: usize) -> std::result::Result<Vec<i32>, String> {
    let count = text.len() + 1;
    if count > max_tokens {
        return Err(format!(
            "text has {count} tokens ([CLS] and {} bytes), over limits.max_text_tokens = {max_tokens}",
            text.len()
        ));
    }
    Ok(std::iter::once(BOS).chain(text.bytes().map(i32::from)).collect())
}

/// The tokenizer's ids, special tokens included.
fn tokenizer_ids(tok: &Tokenizer, text: &str) -> std::result::Result<Vec<i32>, String> {
    let encoding = tok.encode(text, true).map_err(|e| format!("tokenizer failed on the text: {e}"))?;
    let ids = encoding
        .get_ids()
        .iter()
        .map(|&id| i32::try_from(id).map_err(|_| format!("tokenizer gave id {id}, beyond i32")))
        .collect::<std::result::Result<Vec<i32>, String>>()?;
    if ids.is_empty() {
        return Err("the tokenizer gave no tokens for the text: expected at least one".to_string());
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prep(max_tokens: usize) -> TextPrep {
        let mut config = Config::omni_small();
        config.limits.max_text_tokens = max_tokens;
        TextPrep::new(&config, None).unwrap()
    }

    #[test]
    fn bytes_follow_cls() {
        assert_eq!(prep(16).ids("é!").unwrap(), vec![256, 0xC3, 0xA9, 0x21]);
    }

    #[test]
    fn empty_whitespace_and_long_text_are_refused() {
        let p = prep(4);
        for bad in ["", "  \n\t"] {
            let err = p.ids(bad).unwrap_err();
            assert!(err.contains("empty"), "{err}");
        }
        assert_eq!(p.ids("abc").unwrap().len(), 4);
        let err = p.ids("abcd").unwrap_err();
        assert!(err.contains("5 tokens") && err.contains("max_text_tokens = 4"), "{err}");
    }

    fn write_tokenizer(name: &str) -> std::path::PathBuf {
        let json = r#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],"normalizer":null,
            "pre_tokenizer":{"type":"Whitespace"},"post_processor":null,"decoder":null,
            "model":{"type":"WordLevel","vocab":{"[UNK]":0,"hello":1,"world":2},"unk_token":"[UNK]"}}"#;
        let path = std::env::temp_dir().join(format!("omnifuse-input-{}-{name}.json", std::process::id()));
        std::fs::write(&path, json).unwrap();
        path
    }

    #[test]
    fn tokenizer_ids_replace_bytes() {
        let path = write_tokenizer("ok");
        let p = TextPrep::new(&Config::omni_small(), Some(&path)).unwrap();
        assert_eq!(p.ids("hello there world").unwrap(), vec![1, 0, 2]);
        let mut small = Config::omni_small();
        small.text.vocab = 2;
        let err = TextPrep::new(&small, Some(&path)).unwrap_err().to_string();
        assert!(err.contains("3 ids") && err.contains("text.vocab = 2"), "{err}");
        std::fs::remove_file(&path).unwrap();
        let err = TextPrep::new(&Config::omni_small(), Some(&path)).unwrap_err().to_string();
        assert!(err.contains("cannot load"), "{err}");
    }

    #[test]
    fn a_tokenizer_files_padding_does_not_apply_but_its_truncation_does() {
        let json = r#"{"version":"1.0","truncation":{"direction":"Right","max_length":2,"strategy":"LongestFirst","stride":0},
            "padding":{"strategy":{"Fixed":8},"direction":"Right","pad_to_multiple_of":null,"pad_id":0,"pad_type_id":0,
            "pad_token":"[UNK]"},"added_tokens":[],"normalizer":null,
            "pre_tokenizer":{"type":"Whitespace"},"post_processor":null,"decoder":null,
            "model":{"type":"WordLevel","vocab":{"[UNK]":0,"hello":1,"world":2},"unk_token":"[UNK]"}}"#;
        let path = std::env::temp_dir().join(format!("omnifuse-input-{}-padded.json", std::process::id()));
        std::fs::write(&path, json).unwrap();
        let p = TextPrep::new(&Config::omni_small(), Some(&path)).unwrap();
        assert_eq!(p.ids("hello world hello").unwrap(), vec![1, 2], "cut to 2, not padded to 8");
        assert_eq!(p.ids("world").unwrap(), vec![2], "not padded to 8");
        std::fs::remove_file(&path).unwrap();
    }
}
