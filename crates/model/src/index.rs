//! The retrieval index: L2-normalised embeddings of earlier inputs (one per input, from a
//! model's retrieval head), searched by cosine similarity — text finds images, images find
//! text. It lives in memory while a process runs and is kept between runs as one JSON file.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::input::Modality;

/// One indexed input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// What the user called it: a file path or the text itself.
    pub key: String,
    /// Its modality's name.
    pub modality: String,
    /// Its normalised embedding.
    pub embedding: Vec<f32>,
}

/// A search hit.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Match {
    /// The entry's key.
    pub key: String,
    /// The entry's modality.
    pub modality: String,
    /// Cosine similarity with the query (embeddings are normalised: a dot product).
    pub score: f32,
}

/// An index for one model's retrieval head.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Index {
    /// Model name the embeddings came from.
    pub model: String,
    /// Retrieval head name.
    pub head: String,
    /// Embedding width.
    pub dim: usize,
    /// The entries, in the order they were added.
    pub entries: Vec<Entry>,
}

impl Index {
    /// An empty index.
    pub fn new(model: &str, head: &str, dim: usize) -> Index {
        Index { model: model.to_string(), head: head.to_string(), dim, entries: Vec::new() }
    }

    /// Read an index file.
    pub fn load(path: &Path) -> Result<Index> {
        let text =
            std::fs::read_to_string(path).map_err(|e| Error::io(format!("reading index {}", path.display()), e))?;
        let index: Index = serde_json::from_str(&text)
            .map_err(|e| Error::Request(format!("index {} is not a valid index file: {e}", path.display())))?;
        for (i, e) in index.entries.iter().enumerate() {
            if e.embedding.len() != index.dim || Modality::parse(&e.modality).is_none() {
                return Err(Error::Request(format!(
                    "index {}: entry {i} ('{}') has a {}-d {} embedding, expected {}-d of a known modality",
                    path.display(),
                    e.key,
                    e.embedding.len(),
                    e.modality,
                    index.dim
                )));
            }
        }
        Ok(index)
    }

    /// Read `path` when it exists, else start an empty index for this model and head.
    pub fn open_or_new(path: &Path, model: &str, head: &str, dim: usize) -> Result<Index> {
        if !path.exists() {
            return Ok(Index::new(model, head, dim));
        }
        let index = Index::load(path)?;
        index.check(model, head, dim)?;
        Ok(index)
    }

    /// Error unless this index holds embeddings of `model`'s head `head` of width `dim`.
    pub fn check(&self, model: &str, head: &str, dim: usize) -> Result<()> {
        if self.model != model || self.head != head || self.dim != dim {
            return Err(Error::Request(format!(
                "the index holds {}-d embeddings of {}/{}, this model's are {dim}-d from {model}/{head}",
                self.dim, self.model, self.head
            )));
        }
        Ok(())
    }

    /// Write the index to `path` (through a temporary file, so a crash never leaves half a file).
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string(self).map_err(|e| Error::Request(e.to_string()))?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(format!("replacing {}", path.display()), e))
    }

    /// Add one embedding.
    pub fn add(&mut self, key: String, modality: Modality, embedding: Vec<f32>) -> Result<()> {
        if embedding.len() != self.dim {
            return Err(Error::Request(format!(
                "a {}-d embedding cannot join a {}-d index",
                embedding.len(),
                self.dim
            )));
        }
        self.entries.push(Entry { key, modality: modality.name().to_string(), embedding });
        Ok(())
    }

    /// The `k` entries most similar to `query`, best first (ties keep insertion order),
    /// leaving out entries of modality `exclude` when given.
    pub fn search(&self, query: &[f32], exclude: Option<Modality>, k: usize) -> Vec<Match> {
        let skip = exclude.map(|m| m.name());
        let mut hits: Vec<Match> = self
            .entries
            .iter()
            .filter(|e| Some(e.modality.as_str()) != skip)
            .map(|e| Match {
                key: e.key.clone(),
                modality: e.modality.clone(),
                score: e.embedding.iter().zip(query).map(|(a, b)| a * b).sum(),
            })
            .collect();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score));
        hits.truncate(k);
        hits
    }
}

/// Fill in the matches of every retrieval head of `response` from `index`: for each input, the
/// `k` most similar entries of other modalities.
pub fn attach_matches(response: &mut crate::output::Response, index: &Index, k: usize) -> Result<()> {
    let modalities: Vec<Modality> = response.inputs.iter().map(|i| i.modality).collect();
    for (name, r) in response.heads.iter_mut() {
        if let crate::output::HeadResult::Retrieval { inputs, matches, fused } = r {
            index.check(&response.model, name, fused.len())?;
            let found = inputs.iter().zip(&modalities).map(|(q, m)| index.search(q, Some(*m), k)).collect();
            *matches = Some(found);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_ranks_by_cosine_and_crosses_modalities() {
        let mut ix = Index::new("m", "retrieval", 2);
        ix.add("cat.png".into(), Modality::Image, vec![1.0, 0.0]).unwrap();
        ix.add("dog.png".into(), Modality::Image, vec![0.0, 1.0]).unwrap();
        ix.add("a cat".into(), Modality::Text, vec![0.8, 0.6]).unwrap();
        assert!(ix.add("bad".into(), Modality::Text, vec![1.0]).is_err());
        let q = [0.8f32, 0.6];
        let hits = ix.search(&q, Some(Modality::Text), 5);
        assert_eq!(hits.iter().map(|h| h.key.as_str()).collect::<Vec<_>>(), ["cat.png", "dog.png"]);
        assert!((hits[0].score - 0.8).abs() < 1e-6);
        assert_eq!(ix.search(&q, None, 1)[0].key, "a cat");
        let dir = std::env::temp_dir().join(format!("omnifuse-index-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("ix.json");
        ix.save(&p).unwrap();
        assert_eq!(Index::load(&p).unwrap(), ix);
        assert!(Index::open_or_new(&p, "other", "retrieval", 2).is_err());
        std::fs::write(&p, "{not json").unwrap();
        assert!(Index::load(&p).unwrap_err().to_string().contains("not a valid index"));
        std::fs::remove_dir_all(&dir).ok();
    }
}
