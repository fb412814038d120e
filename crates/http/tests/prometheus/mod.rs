//! A strict parser of the Prometheus text exposition format (version 0.0.4), for the tests:
//! `# HELP` and `# TYPE` lines, `name{labels} value` samples with escaped label values, every
//! sample in a declared family, no duplicate series, and histograms whose `_bucket{le=…}`
//! counts rise with `le`, end at `+Inf` equal to `_count`, beside a `_sum`.

#![allow(dead_code, clippy::panic, clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

/// One sample.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed page: its samples and each family's type.
#[derive(Debug, Default)]
pub struct Page {
    pub samples: Vec<Sample>,
    pub types: BTreeMap<String, String>,
}

impl Page {
    /// The value of `name` with these labels (a subset of the sample's), if exactly one matches.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found: Vec<f64> = self
            .samples
            .iter()
            .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
            .map(|s| s.value)
            .collect();
        match found.as_slice() {
            [v] => Some(*v),
            [] => None,
            _ => panic!("{} samples of {name} match {labels:?}", found.len()),
        }
    }
}

fn metric_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == ':')
}

fn label_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f.is_ascii_alphabetic() || f == '_') && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

fn number(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ if s.chars().all(|c| c.is_ascii_digit() || "+-.eE".contains(c)) => {
            s.parse().map_err(|e| format!("value {s:?}: {e}"))
        }
        _ => Err(format!("value {s:?} is not a number")),
    }
}

/// `{a="x",b="y"}` at the start of `rest`: the labels and what follows.
fn labels(rest: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut out = BTreeMap::new();
    let mut chars = rest.char_indices().peekable();
    let mut i;
    loop {
        let start = chars.peek().map(|(i, _)| *i).ok_or("unterminated labels")?;
        if rest[start..].starts_with('}') {
            return Ok((out, &rest[start + 1..]));
        }
        let eq = rest[start..].find("=\"").ok_or_else(|| format!("label without =\" in {rest:?}"))? + start;
        let name = &rest[start..eq];
        if !label_name(name) {
            return Err(format!("bad label name {name:?}"));
        }
        while chars.peek().is_some_and(|(j, _)| *j < eq + 2) {
            chars.next();
        }
        let mut value = String::new();
        loop {
            let (_, c) = chars.next().ok_or("unterminated label value")?;
            match c {
                '"' => break,
                '\\' => match chars.next().map(|(_, c)| c) {
                    Some('\\') => value.push('\\'),
                    Some('"') => value.push('"'),
                    Some('n') => value.push('\n'),
                    other => return Err(format!("bad escape \\{other:?} in a label value")),
                },
                '\n' => return Err("a raw newline in a label value".into()),
                c => value.push(c),
            }
        }
        if out.insert(name.to_string(), value).is_some() {
            return Err(format!("label {name} twice"));
        }
        i = chars.peek().map(|(i, _)| *i).ok_or("unterminated labels")?;
        if rest[i..].starts_with(',') {
            chars.next();
        } else if !rest[i..].starts_with('}') {
            return Err(format!("expected , or }} after a label in {rest:?}"));
        }
    }
}

/// The family a sample belongs to, given the declared types.
fn family<'a>(name: &'a str, types: &BTreeMap<String, String>) -> Option<&'a str> {
    if types.contains_key(name) {
        return Some(name);
    }
    ["_bucket", "_sum", "_count"]
        .iter()
        .filter_map(|sfx| name.strip_suffix(sfx))
        .find(|base| types.get(*base).is_some_and(|t| t == "histogram" || t == "summary"))
}

/// Parse a page strictly; the error names the line.
pub fn parse(text: &str) -> Result<Page, String> {
    let mut page = Page::default();
    let mut helped = BTreeSet::new();
    let mut seen = BTreeSet::new();
    if !text.ends_with('\n') {
        return Err("the page does not end with a newline".into());
    }
    for (n, line) in text.lines().enumerate() {
        let at = |e: String| format!("line {}: {e}: {line:?}", n + 1);
        if let Some(rest) = line.strip_prefix("# ") {
            let (kw, rest) = rest.split_once(' ').ok_or_else(|| at("a comment without a keyword".into()))?;
            let (name, arg) = rest.split_once(' ').ok_or_else(|| at("no text after the name".into()))?;
            if !metric_name(name) {
                return Err(at(format!("bad metric name {name:?}")));
            }
            match kw {
                "HELP" => {
                    if !helped.insert(name.to_string()) {
                        return Err(at("HELP twice".into()));
                    }
                }
                "TYPE" => {
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&arg) {
                        return Err(at(format!("unknown type {arg:?}")));
                    }
                    if page.samples.iter().any(|s| family(&s.name, &page.types) == Some(name) || s.name == name) {
                        return Err(at("TYPE after the family's samples".into()));
                    }
                    if page.types.insert(name.to_string(), arg.to_string()).is_some() {
                        return Err(at("TYPE twice".into()));
                    }
                }
                _ => return Err(at(format!("unknown comment keyword {kw:?}"))),
            }
            continue;
        }
        if line.is_empty() || line.starts_with('#') {
            return Err(at("an empty line or a bare comment".into()));
        }
        let end = line.find(['{', ' ']).ok_or_else(|| at("no value".into()))?;
        let name = &line[..end];
        if !metric_name(name) {
            return Err(at(format!("bad metric name {name:?}")));
        }
        let (labels, rest) = if line[end..].starts_with('{') {
            labels(&line[end + 1..]).map_err(at)?
        } else {
            (BTreeMap::new(), &line[end..])
        };
        let rest = rest.strip_prefix(' ').ok_or_else(|| at("no space before the value".into()))?;
        let mut parts = rest.split(' ');
        let value = number(parts.next().unwrap_or_default()).map_err(at)?;
        if let Some(ts) = parts.next() {
            ts.parse::<i64>().map_err(|e| at(format!("timestamp {ts:?}: {e}")))?;
        }
        if parts.next().is_some() {
            return Err(at("text after the timestamp".into()));
        }
        let fam = family(name, &page.types).ok_or_else(|| at("a sample of no declared family".into()))?;
        if page.types[fam] == "counter" && (value.is_nan() || value < 0.0) {
            return Err(at("a negative or NaN counter".into()));
        }
        if !seen.insert((name.to_string(), labels.clone())) {
            return Err(at("a duplicate series".into()));
        }
        page.samples.push(Sample { name: name.to_string(), labels, value });
    }
    check_histograms(&page)?;
    Ok(page)
}

fn check_histograms(page: &Page) -> Result<(), String> {
    for (fam, _) in page.types.iter().filter(|(_, t)| *t == "histogram") {
        let mut series: BTreeMap<BTreeMap<String, String>, Vec<(f64, f64)>> = BTreeMap::new();
        for s in page.samples.iter().filter(|s| s.name == format!("{fam}_bucket")) {
            let mut key = s.labels.clone();
            let le = key.remove("le").ok_or_else(|| format!("{fam}_bucket without le"))?;
            series.entry(key).or_default().push((number(&le)?, s.value));
        }
        for (key, buckets) in &series {
            let les: Vec<f64> = buckets.iter().map(|b| b.0).collect();
            if les.windows(2).any(|w| w[0] >= w[1]) || les.last() != Some(&f64::INFINITY) {
                return Err(format!("{fam} {key:?}: le bounds {les:?} do not rise to +Inf"));
            }
            if buckets.windows(2).any(|w| w[0].1 > w[1].1) {
                return Err(format!("{fam} {key:?}: bucket counts {buckets:?} fall"));
            }
            let find = |sfx: &str| {
                page.samples.iter().find(|s| s.name == format!("{fam}{sfx}") && &s.labels == key).map(|s| s.value)
            };
            let count = find("_count").ok_or_else(|| format!("{fam} {key:?}: no _count"))?;
            find("_sum").ok_or_else(|| format!("{fam} {key:?}: no _sum"))?;
            if buckets.last().map(|b| b.1) != Some(count) {
                return Err(format!("{fam} {key:?}: +Inf bucket differs from _count {count}"));
            }
        }
    }
    Ok(())
}

/// The parser itself refuses what it must.
pub fn self_check() {
    assert!(parse("# TYPE a counter\na 1\n").is_ok());
    assert!(parse("# TYPE a counter\na{x=\"q\\\"\\\\\\n\"} 1\n").unwrap().samples[0].labels["x"] == "q\"\\\n");
    for bad in [
        "a 1\n",
        "# TYPE a counter\na 1",
        "# TYPE a counter\na{x=\"1} 1\n",
        "# TYPE a counter\na{x=\"\\q\"} 1\n",
        "# TYPE a counter\na one\n",
        "# TYPE a counter\na 1\na 1\n",
        "# TYPE a counter\na -1\n",
        "# TYPE a wobble\n",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n",
    ] {
        assert!(parse(bad).is_err(), "accepted {bad:?}");
    }
}
