//! Reading a kernel source the way the wrapper generator needs: the `extern "C" __global__`
//! kernels and the `extern __shared__` arrays it declares (both looked for in the
//! preprocessed text, since kernels are usually stamped out by macros), and the one rewrite
//! the host build makes to the source (`extern __shared__` → `extern`).

/// Whether `b` may appear in a C identifier.
fn ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Byte offsets where `word` occurs as a whole token.
fn tokens<'a>(text: &'a str, word: &'a str) -> impl Iterator<Item = usize> + 'a {
    let bytes = text.as_bytes();
    text.match_indices(word).map(|(i, _)| i).filter(move |&i| {
        let before = i == 0 || !ident_byte(bytes[i - 1]);
        let end = i + word.len();
        let after = end >= bytes.len() || !ident_byte(bytes[end]);
        before && after
    })
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// The identifier starting at `i` (after white space) and the offset past it.
fn ident(b: &[u8], i: usize) -> Option<(&str, usize)> {
    let s = skip_ws(b, i);
    let mut e = s;
    while e < b.len() && ident_byte(b[e]) {
        e += 1;
    }
    (e > s).then(|| (std::str::from_utf8(&b[s..e]).unwrap_or(""), e))
}

/// The offset past the parenthesised group opening at `i` (after white space), if one does.
fn skip_parens(b: &[u8], i: usize) -> Option<usize> {
    let mut i = skip_ws(b, i);
    if b.get(i) != Some(&b'(') {
        return None;
    }
    let mut depth = 0usize;
    while i < b.len() {
        match b[i] {
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The names of the `extern "C" __global__ void` kernels of preprocessed `text`, in order of
/// appearance, without repeats. `__launch_bounds__(..)` between `void` and the name is skipped.
pub fn kernels(text: &str) -> Vec<String> {
    let b = text.as_bytes();
    let mut names: Vec<String> = Vec::new();
    for at in tokens(text, "__global__") {
        let head = text[..at].trim_end();
        if !head.ends_with("extern \"C\"") {
            continue;
        }
        let Some(("void", mut i)) = ident(b, at + "__global__".len()) else { continue };
        let mut name = None;
        while let Some((word, end)) = ident(b, i) {
            if word == "__launch_bounds__" {
                match skip_parens(b, end) {
                    Some(e) => i = e,
                    None => break,
                }
                continue;
            }
            if b.get(skip_ws(b, end)) == Some(&b'(') {
                name = Some(word.to_string());
            }
            break;
        }
        if let Some(n) = name
            && !names.contains(&n)
        {
            names.push(n);
        }
    }
    names
}

/// A dynamic shared-memory array: `extern __shared__ <ty> <name>[];`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DynamicShared {
    /// The element type, as written (alignment qualifiers dropped).
    pub ty: String,
    /// The array's name.
    pub name: String,
}

/// The `extern __shared__` arrays of preprocessed `text`, without repeats (by name).
pub fn dynamic_shared(text: &str) -> Vec<DynamicShared> {
    let mut found: Vec<DynamicShared> = Vec::new();
    for at in tokens(text, "__shared__") {
        if !text[..at].trim_end().ends_with("extern") {
            continue;
        }
        let rest = &text[at + "__shared__".len()..];
        let Some(decl) = rest.split(';').next() else { continue };
        let Some(open) = decl.find('[') else { continue };
        let head = decl[..open].trim_end();
        let name_start = head.rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).map_or(0, |i| i + 1);
        let name = head[name_start..].to_string();
        let ty = strip_alignment(&head[..name_start]);
        if name.is_empty() || ty.is_empty() || found.iter().any(|d| d.name == name) {
            continue;
        }
        found.push(DynamicShared { ty, name });
    }
    found
}

/// `ty` without `__align__(n)` / `alignas(n)` qualifiers, white space collapsed.
fn strip_alignment(ty: &str) -> String {
    let mut out = String::new();
    let b = ty.as_bytes();
    let mut i = 0;
    while let Some((word, end)) = ident(b, i) {
        if word == "__align__" || word == "alignas" {
            i = skip_parens(b, end).unwrap_or(end);
            continue;
        }
        let s = skip_ws(b, i);
        let piece = ty[s..end].trim();
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(piece);
        i = end;
        // Keep punctuation such as `*` that follows the word.
        let next = skip_ws(b, i);
        let mut e = next;
        while e < b.len() && !ident_byte(b[e]) && !b[e].is_ascii_whitespace() {
            e += 1;
        }
        if e > next {
            out.push_str(&ty[next..e]);
            i = e;
        }
    }
    out
}

/// `source` with every `extern __shared__` (any white space between) turned into `extern`:
/// the host header makes `__shared__` mean `static`, which cannot follow `extern`.
pub fn rewrite_dynamic_shared(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut last = 0;
    let b = source.as_bytes();
    for at in tokens(source, "extern") {
        let after = skip_ws(b, at + "extern".len());
        if source[after..].starts_with("__shared__")
            && b.get(after + "__shared__".len()).is_none_or(|&c| !ident_byte(c))
            && at >= last
        {
            out.push_str(&source[last..at]);
            out.push_str("extern");
            last = after + "__shared__".len();
        }
    }
    out.push_str(&source[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_macro_stamped_kernels_past_launch_bounds() {
        let text = r#"
            extern "C" __global__ void __launch_bounds__(256, 1) gemm_tiled_nn_f32(const float* a) { }
            extern "C" __global__ void __launch_bounds__((64 * 4)) attention_flash_f16 (int x) {}
            extern "C"   __global__   void plain_k(int x);
            __global__ void not_c(int x) {}
            template <typename T> __global__ void templ(T x) {}
            extern "C" __global__ void plain_k(int x) {}
        "#;
        assert_eq!(kernels(text), ["gemm_tiled_nn_f32", "attention_flash_f16", "plain_k"]);
    }

    #[test]
    fn finds_dynamic_shared_arrays() {
        let text = "void f() { extern __shared__ float att_smem[]; }\n\
                    void g() { extern __shared__ __align__(16) unsigned char raw[]; __shared__ float s[4]; }\n\
                    void h() { extern __shared__ float att_smem[]; }";
        let d = dynamic_shared(text);
        assert_eq!(
            d,
            [
                DynamicShared { ty: "float".into(), name: "att_smem".into() },
                DynamicShared { ty: "unsigned char".into(), name: "raw".into() }
            ]
        );
    }

    #[test]
    fn rewrites_only_extern_shared() {
        let s =
            "extern  __shared__ float a[]; __shared__ float b[2]; extern \"C\" void k(); extern\n__shared__ int c[];";
        assert_eq!(
            rewrite_dynamic_shared(s),
            "extern float a[]; __shared__ float b[2]; extern \"C\" void k(); extern int c[];"
        );
    }
}
