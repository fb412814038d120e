//! A workload of real inputs: every file of a directory is one request of one input, detected
//! by content the way the model detects it (PNG/JPEG image, RIFF/WAVE audio, Y4M video;
//! `.txt` files are UTF-8 text). A file the model would not recognise is an error that names
//! it, found before the run starts. `labels.tsv` (the accuracy dataset's labels) is skipped.

use std::path::Path;

use omnifuse_model::input::detect;

use crate::accuracy::Dataset;
use crate::workload::{Request, WorkloadError};

/// The requests of `dir`, in file-name order, and a count per modality for the report.
pub fn load(dir: &Path) -> Result<(Vec<Request>, String), WorkloadError> {
    let data = Dataset::load(dir).map_err(WorkloadError)?;
    let mut counts = std::collections::BTreeMap::new();
    let mut requests = Vec::with_capacity(data.items.len());
    for item in data.items {
        for input in &item.inputs {
            let m = detect(0, input).map_err(|e| {
                WorkloadError(format!(
                    "{}: {e} (expected a .txt, PNG, JPEG, WAV or Y4M file)",
                    dir.join(&item.name).display()
                ))
            })?;
            *counts.entry(m.name()).or_insert(0usize) += 1;
        }
        requests.push(item.inputs);
    }
    let summary: Vec<String> = counts.iter().map(|(m, n)| format!("{m} {n}")).collect();
    Ok((requests, format!("{} ({})", dir.display(), summary.join(", "))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_detected_and_unknown_ones_named() {
        let dir = std::env::temp_dir().join(format!("omnifuse-inputs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.txt"), "a calm sea").unwrap();
        std::fs::write(dir.join("b.y4m"), b"YUV4MPEG2 W2 H2 F25:1 C420jpeg\nFRAME\n\0\0\0\0\0\0").unwrap();
        let (reqs, summary) = load(&dir).unwrap();
        assert_eq!(reqs.len(), 2);
        assert!(summary.contains("text 1") && summary.contains("video 1"), "{summary}");
        std::fs::write(dir.join("c.gif"), b"GIF89a....").unwrap();
        let e = load(&dir).unwrap_err().to_string();
        assert!(e.contains("c.gif") && e.contains("expected"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(load(&dir).unwrap_err().to_string().contains("reading"));
    }
}
