//! Accuracy loss of a lower precision against FP32, on the same inputs in the same run: per
//! head, classification top-1 agreement (and accuracy where the dataset has labels), retrieval
//! recall against the dataset's pairs and top-1 rank agreement with FP32, generation token
//! agreement, embedding cosine, and per-stage SQNR (each encoder, the fusion output) so a
//! user sees where the error enters. Quality is also given MLPerf's way: as a percentage of
//! the FP32 figure, against the 99% and 99.9% targets.
//!
//! Datasets: [`Dataset::builtin`] (seeded near-duplicate pairs of every modality mix, no files
//! needed) or
//! [`Dataset::load`]: a directory of inputs, one request per file (`.txt` text, PNG/JPEG
//! images, WAV audio, Y4M video), with an optional `labels.tsv`: lines
//! `FILE<TAB>CLASS[<TAB>PAIR]` — `CLASS` the expected label of the classification head (empty:
//! none), `PAIR` a group id: items of one group are each other's retrieval targets.

use std::collections::BTreeMap;
use std::path::Path;

use omnifuse_model::Model;
use omnifuse_model::input::RawInput;
use omnifuse_model::output::HeadResult;
use omnifuse_model::request::Parameters;

/// One request of a dataset.
#[derive(Clone, Debug)]
pub struct Item {
    /// Its name (file name, or `builtin-<i>`).
    pub name: String,
    /// Its inputs.
    pub inputs: Vec<RawInput>,
    /// The expected classification label.
    pub label: Option<String>,
    /// Its retrieval group.
    pub pair: Option<String>,
}

/// Requests to compare precisions on.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Where it came from.
    pub name: String,
    /// The requests.
    pub items: Vec<Item>,
}

impl Dataset {
    /// `n` seeded requests over every modality and the common combinations, in near-duplicate
    /// pairs with structured content (see [`crate::builtin_set`]).
    pub fn builtin(n: usize, seed: u64) -> Dataset {
        let items = crate::builtin_set::items(n, seed);
        Dataset { name: format!("builtin ({n} seeded requests in pairs, seed {seed})"), items }
    }

    /// A directory of inputs (see the module docs).
    pub fn load(dir: &Path) -> Result<Dataset, String> {
        let mut labels: BTreeMap<String, (Option<String>, Option<String>)> = BTreeMap::new();
        let lpath = dir.join("labels.tsv");
        if lpath.exists() {
            let text = std::fs::read_to_string(&lpath).map_err(|e| format!("reading {}: {e}", lpath.display()))?;
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() || line.starts_with('#') {
                    continue;
                }
                let f: Vec<&str> = line.split('\t').collect();
                if f.len() < 2 {
                    return Err(format!(
                        "{}:{}: expected FILE<TAB>CLASS[<TAB>PAIR], got '{line}'",
                        lpath.display(),
                        i + 1
                    ));
                }
                let opt = |s: Option<&&str>| s.map(|s| s.trim()).filter(|s| !s.is_empty()).map(str::to_string);
                labels.insert(f[0].to_string(), (opt(f.get(1)), opt(f.get(2))));
            }
        }
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map_err(|e| format!("reading {}: {e}", dir.display()))?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != "labels.tsv" && !n.starts_with('.'))
            .collect();
        names.sort();
        let mut items = Vec::with_capacity(names.len());
        for n in names {
            let path = dir.join(&n);
            let bytes = std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
            let input = if n.ends_with(".txt") {
                RawInput::Text(String::from_utf8(bytes).map_err(|_| format!("{}: not UTF-8 text", path.display()))?)
            } else {
                RawInput::Bytes(bytes)
            };
            let (label, pair) = labels.remove(&n).unwrap_or((None, None));
            items.push(Item { name: n, inputs: vec![input], label, pair });
        }
        if let Some(missing) = labels.keys().next() {
            return Err(format!("labels.tsv names '{missing}', which is not a file of {}", dir.display()));
        }
        if items.is_empty() {
            return Err(format!("{} holds no input files", dir.display()));
        }
        Ok(Dataset { name: dir.display().to_string(), items })
    }
}

/// Running sums for a signal-to-quantisation-noise ratio.
#[derive(Clone, Copy, Debug, Default)]
struct Sqnr {
    signal: f64,
    noise: f64,
}

impl Sqnr {
    fn add(&mut self, reference: &[f32], got: &[f32]) {
        for (&r, &g) in reference.iter().zip(got) {
            self.signal += (r as f64).powi(2);
            self.noise += (r as f64 - g as f64).powi(2);
        }
    }
    fn db(&self) -> f64 {
        if self.noise == 0.0 { f64::INFINITY } else { 10.0 * (self.signal / self.noise).log10() }
    }
}

/// Cosine similarity.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        ab += x as f64 * y as f64;
        aa += (x as f64).powi(2);
        bb += (y as f64).powi(2);
    }
    if aa == 0.0 || bb == 0.0 { if aa == bb { 1.0 } else { 0.0 } } else { ab / (aa.sqrt() * bb.sqrt()) }
}

/// What one head measured.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct HeadReport {
    /// Head name.
    pub head: String,
    /// Head kind.
    pub kind: String,
    /// Requests the head answered in both precisions.
    pub requests: usize,
    /// Classification: fraction whose top-1 label equals FP32's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top1_agreement: Option<f64>,
    /// Classification: how well-posed the agreement is — the median FP32 gap between the top
    /// two probabilities, and the largest such gap among the requests whose label changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top1_margin: Option<(f64, f64)>,
    /// Classification with labels: (FP32 accuracy, target accuracy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<(f64, f64)>,
    /// Retrieval: mean and min cosine between FP32 and target embeddings (fused and per input).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cosine: Option<(f64, f64)>,
    /// Retrieval: fraction of queries whose nearest other request is the same as in FP32.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub r1_agreement: Option<f64>,
    /// Retrieval: how well-posed that is — the median FP32 gap between the best and second
    /// best cosine of a query, and the largest such gap among the queries that changed their
    /// nearest neighbour (a flip needs the error to exceed the gap).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub r1_margin: Option<(f64, f64)>,
    /// Retrieval with pairs: (FP32, target) recall@1 and recall@5.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recall: Option<[(f64, f64); 2]>,
    /// Generation: fraction of token positions equal to FP32's (over the longer sequence),
    /// and fraction of whole sequences equal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_agreement: Option<(f64, f64)>,
    /// Quality as a percentage of FP32 (MLPerf's convention): classification accuracy (or
    /// agreement), retrieval recall@1 (or R@1 agreement), generation token agreement.
    pub quality_pct: f64,
}

/// The whole comparison.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Report {
    /// Dataset description.
    pub dataset: String,
    /// Requests run.
    pub requests: usize,
    /// Requests that failed in either precision (named in `errors`).
    pub failed: usize,
    /// The first few failures.
    pub errors: Vec<String>,
    /// Per head.
    pub heads: Vec<HeadReport>,
    /// SQNR in dB per stage (`encoder.<modality>`, `fusion`), FP32 as the signal.
    pub sqnr_db: BTreeMap<String, f64>,
}

impl Report {
    /// The lowest quality of any head, in percent of FP32.
    pub fn min_quality_pct(&self) -> f64 {
        self.heads.iter().map(|h| h.quality_pct).fold(f64::INFINITY, f64::min)
    }
}

/// Retrieval embeddings of one request in both precisions.
struct RetrievalPair {
    item: usize,
    reference: Vec<f32>,
    target: Vec<f32>,
}

fn nearest(rows: &[&[f32]], q: usize) -> Vec<usize> {
    let mut order: Vec<(f64, usize)> =
        (0..rows.len()).filter(|&j| j != q).map(|j| (cosine(rows[q], rows[j]), j)).collect();
    order.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    order.into_iter().map(|(_, j)| j).collect()
}

/// (median FP32 margin, largest margin that flipped), or `None` with no margins.
fn margin_summary(mut margins: Vec<f64>, flipped: f64) -> Option<(f64, f64)> {
    margins.sort_by(f64::total_cmp);
    margins.get(margins.len() / 2).map(|&median| (median, flipped))
}

/// The gap between the two largest of `p` (0 with fewer than two).
fn top_gap(p: &[f32]) -> f64 {
    let (mut a, mut b) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    for &x in p {
        let x = f64::from(x);
        if x > a {
            (a, b) = (x, a);
        } else if x > b {
            b = x;
        }
    }
    if b.is_finite() { a - b } else { 0.0 }
}

/// Recall@1 and @5 over items that have a pair partner (`None` when none has).
pub fn recall(rows: &[&[f32]], pairs: &[Option<&str>]) -> Option<(f64, f64)> {
    let (mut n, mut r1, mut r5) = (0usize, 0usize, 0usize);
    for q in 0..rows.len() {
        let Some(p) = pairs[q] else { continue };
        if !(0..rows.len()).any(|j| j != q && pairs[j] == Some(p)) {
            continue;
        }
        n += 1;
        let order = nearest(rows, q);
        let hit = |k: usize| order.iter().take(k).any(|&j| pairs[j] == Some(p));
        r1 += usize::from(hit(1));
        r5 += usize::from(hit(5));
    }
    (n > 0).then(|| (r1 as f64 / n as f64, r5 as f64 / n as f64))
}

/// Compare `target` with `reference` (the FP32 model) on `data`; `progress` is called after
/// each request with (done, total).
pub fn evaluate(reference: &Model, target: &Model, data: &Dataset, mut progress: impl FnMut(usize, usize)) -> Report {
    let params = Parameters::default();
    let mut report = Report { dataset: data.name.clone(), requests: data.items.len(), ..Report::default() };
    let mut sqnr: BTreeMap<String, Sqnr> = BTreeMap::new();
    // Per head: (kind, per-request (reference, target) results).
    let mut per_head: BTreeMap<String, Vec<(usize, HeadResult, HeadResult)>> = BTreeMap::new();
    for (i, item) in data.items.iter().enumerate() {
        let pair = (reference.run(&item.inputs, &params), target.run(&item.inputs, &params));
        let traces = (reference.trace(&item.inputs), target.trace(&item.inputs));
        match (pair, traces) {
            ((Ok(a), Ok(b)), (Ok(ta), Ok(tb))) => {
                for ((stage, ra), (_, rb)) in ta.iter().zip(&tb) {
                    sqnr.entry(stage.clone()).or_default().add(ra, rb);
                }
                for (name, ra) in a.heads {
                    if let Some(rb) = b.heads.get(&name) {
                        per_head.entry(name).or_default().push((i, ra, rb.clone()));
                    }
                }
            }
            ((ra, rb), (sa, sb)) => {
                report.failed += 1;
                let why = [ra.err(), rb.err(), sa.err(), sb.err()].into_iter().flatten().next();
                if report.errors.len() < 5
                    && let Some(e) = why
                {
                    report.errors.push(format!("{}: {e}", item.name));
                }
            }
        }
        progress(i + 1, data.items.len());
    }
    report.sqnr_db = sqnr.into_iter().map(|(k, v)| (k, v.db())).collect();
    for (head, results) in per_head {
        report.heads.push(head_report(&head, &results, data));
    }
    report
}

fn head_report(head: &str, results: &[(usize, HeadResult, HeadResult)], data: &Dataset) -> HeadReport {
    let n = results.len();
    let mut r = HeadReport { head: head.to_string(), requests: n, ..HeadReport::default() };
    let frac = |k: usize| if n == 0 { 1.0 } else { k as f64 / n as f64 };
    match results.first().map(|x| &x.1) {
        Some(HeadResult::Classification { .. }) => {
            r.kind = "classification".into();
            let (mut agree, mut labelled, mut right_a, mut right_b) = (0usize, 0usize, 0usize, 0usize);
            let (mut margins, mut flipped) = (Vec::new(), 0.0f64);
            for (i, a, b) in results {
                if let (
                    HeadResult::Classification { label: la, probabilities: pa, .. },
                    HeadResult::Classification { label: lb, .. },
                ) = (a, b)
                {
                    let gap = top_gap(pa);
                    margins.push(gap);
                    if la == lb {
                        agree += 1;
                    } else {
                        flipped = flipped.max(gap);
                    }
                    if let Some(want) = &data.items[*i].label {
                        labelled += 1;
                        right_a += usize::from(la == want);
                        right_b += usize::from(lb == want);
                    }
                }
            }
            r.top1_margin = margin_summary(margins, flipped);
            r.top1_agreement = Some(frac(agree));
            r.quality_pct = 100.0 * frac(agree);
            if labelled > 0 {
                let (acc_a, acc_b) = (right_a as f64 / labelled as f64, right_b as f64 / labelled as f64);
                r.accuracy = Some((acc_a, acc_b));
                r.quality_pct = if acc_a > 0.0 { 100.0 * acc_b / acc_a } else { 100.0 };
            }
        }
        Some(HeadResult::Retrieval { .. }) => {
            r.kind = "retrieval".into();
            let mut cos = Vec::new();
            let mut fused = Vec::new();
            for (i, a, b) in results {
                if let (
                    HeadResult::Retrieval { fused: fa, inputs: ia, .. },
                    HeadResult::Retrieval { fused: fb, inputs: ib, .. },
                ) = (a, b)
                {
                    cos.push(cosine(fa, fb));
                    cos.extend(ia.iter().zip(ib).map(|(x, y)| cosine(x, y)));
                    fused.push(RetrievalPair { item: *i, reference: fa.clone(), target: fb.clone() });
                }
            }
            let mean = cos.iter().sum::<f64>() / cos.len().max(1) as f64;
            let min = cos.iter().copied().fold(1.0f64, f64::min);
            r.cosine = Some((mean, min));
            let ra: Vec<&[f32]> = fused.iter().map(|p| p.reference.as_slice()).collect();
            let rb: Vec<&[f32]> = fused.iter().map(|p| p.target.as_slice()).collect();
            let (mut agree, mut margins, mut flipped) = (0usize, Vec::new(), 0.0f64);
            for q in 0..fused.len() {
                let (na, nb) = (nearest(&ra, q), nearest(&rb, q));
                let gap = match (na.first(), na.get(1)) {
                    (Some(&x), Some(&y)) => cosine(ra[q], ra[x]) - cosine(ra[q], ra[y]),
                    _ => 0.0,
                };
                margins.push(gap);
                if na.first() == nb.first() {
                    agree += 1;
                } else {
                    flipped = flipped.max(gap);
                }
            }
            r.r1_margin = margin_summary(margins, flipped);
            let agreement = if fused.len() < 2 { 1.0 } else { agree as f64 / fused.len() as f64 };
            r.r1_agreement = Some(agreement);
            r.quality_pct = 100.0 * agreement;
            let pairs: Vec<Option<&str>> = fused.iter().map(|p| data.items[p.item].pair.as_deref()).collect();
            if let (Some(a), Some(b)) = (recall(&ra, &pairs), recall(&rb, &pairs)) {
                r.recall = Some([(a.0, b.0), (a.1, b.1)]);
                r.quality_pct = if a.0 > 0.0 { 100.0 * b.0 / a.0 } else { 100.0 };
            }
        }
        Some(HeadResult::Generation { .. }) => {
            r.kind = "generation".into();
            let (mut same_pos, mut positions, mut exact) = (0usize, 0usize, 0usize);
            for (_, a, b) in results {
                if let (HeadResult::Generation { tokens: ta, .. }, HeadResult::Generation { tokens: tb, .. }) = (a, b) {
                    same_pos += ta.iter().zip(tb).filter(|(x, y)| x == y).count();
                    positions += ta.len().max(tb.len());
                    exact += usize::from(ta == tb);
                }
            }
            let tok = if positions == 0 { 1.0 } else { same_pos as f64 / positions as f64 };
            r.token_agreement = Some((tok, frac(exact)));
            r.quality_pct = 100.0 * tok;
        }
        None => {}
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recall_counts_only_items_with_a_partner() {
        let rows: Vec<Vec<f32>> = vec![vec![1.0, 0.0], vec![0.9, 0.1], vec![0.0, 1.0], vec![0.1, 0.9]];
        let refs: Vec<&[f32]> = rows.iter().map(|r| r.as_slice()).collect();
        let pairs = [Some("a"), Some("a"), Some("b"), None];
        // a↔a found at rank 1 both ways; b has no partner and is skipped.
        assert_eq!(recall(&refs, &pairs), Some((1.0, 1.0)));
        let crossed = [Some("a"), Some("b"), Some("a"), Some("b")];
        assert_eq!(recall(&refs, &crossed).map(|r| r.0), Some(0.0));
    }

    #[test]
    fn sqnr_and_cosine_behave_at_the_edges() {
        let mut s = Sqnr::default();
        s.add(&[1.0, 2.0], &[1.0, 2.0]);
        assert!(s.db().is_infinite());
        s.add(&[10.0], &[9.0]);
        assert!((s.db() - 10.0 * (105.0f64).log10()).abs() < 1e-9);
        assert!((cosine(&[1.0, 0.0], &[0.0, 1.0])).abs() < 1e-12);
        assert!((top_gap(&[0.2, 0.5, 0.3]) - 0.2).abs() < 1e-6);
        assert_eq!(top_gap(&[1.0]), 0.0);
        assert_eq!(cosine(&[0.0], &[0.0]), 1.0);
    }
}
