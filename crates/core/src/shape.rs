//! Shapes and row-major strides. Tensors in omnifuse are dense and row-major; a view with
//! other strides is made by an explicit op (permute, slice), never implied.

use std::fmt;

use crate::error::{Error, Result};

/// The dimensions of a dense row-major tensor. A rank-0 shape is a scalar.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Shape(pub Vec<usize>);

impl Shape {
    /// A shape from its dimensions.
    pub fn new(dims: impl Into<Vec<usize>>) -> Self {
        Shape(dims.into())
    }

    /// The dimensions.
    pub fn dims(&self) -> &[usize] {
        &self.0
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// Number of elements (1 for a scalar). Errors when the product overflows `usize`.
    pub fn numel(&self) -> Result<usize> {
        self.0.iter().try_fold(1usize, |acc, &d| {
            acc.checked_mul(d)
                .ok_or_else(|| Error::invalid(format!("shape {self} has more elements than fit in usize")))
        })
    }

    /// Number of elements, assuming it was validated (saturates instead of overflowing).
    pub fn numel_unchecked(&self) -> usize {
        self.0.iter().fold(1usize, |acc, &d| acc.saturating_mul(d))
    }

    /// Row-major strides in elements.
    pub fn strides(&self) -> Vec<usize> {
        let mut s = vec![1usize; self.0.len()];
        for i in (0..self.0.len().saturating_sub(1)).rev() {
            s[i] = s[i + 1].saturating_mul(self.0[i + 1]);
        }
        s
    }

    /// The last dimension (1 for a scalar).
    pub fn last(&self) -> usize {
        self.0.last().copied().unwrap_or(1)
    }

    /// Product of all but the last dimension: the number of rows when the tensor is
    /// viewed as a matrix over its last axis.
    pub fn rows(&self) -> usize {
        let n = self.0.len();
        if n == 0 { 1 } else { self.0[..n - 1].iter().product() }
    }

    /// Dimension `axis`, or an error naming the op and rank when out of range.
    pub fn dim(&self, op: &str, axis: usize) -> Result<usize> {
        self.0.get(axis).copied().ok_or_else(|| {
            Error::shape(op, format!("axis {axis} is out of range for shape {self} (rank {})", self.rank()))
        })
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{d}")?;
        }
        write!(f, "]")
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl From<&[usize]> for Shape {
    fn from(d: &[usize]) -> Self {
        Shape(d.to_vec())
    }
}

impl<const N: usize> From<[usize; N]> for Shape {
    fn from(d: [usize; N]) -> Self {
        Shape(d.to_vec())
    }
}

impl From<Vec<usize>> for Shape {
    fn from(d: Vec<usize>) -> Self {
        Shape(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strides_and_counts() {
        let s = Shape::from([2, 3, 4]);
        assert_eq!(s.strides(), vec![12, 4, 1]);
        assert_eq!(s.numel().ok(), Some(24));
        assert_eq!(s.rows(), 6);
        assert_eq!(Shape::default().numel().ok(), Some(1));
        assert!(Shape::from([usize::MAX, 2]).numel().is_err());
        assert!(s.dim("x", 3).is_err());
    }
}
