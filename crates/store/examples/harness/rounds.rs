//! Rounds of store-vs-baseline timings, shared by the comparison harnesses (included with
//! `#[path]`; a directory without `main.rs` is not an example of its own).

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Runs `round(r)` for `r` in `0..n` and returns the median (store, baseline) figures.
pub fn measure(n: usize, mut round: impl FnMut(usize) -> AnyResult<(f64, f64)>) -> AnyResult<(f64, f64)> {
    let (mut store, mut base) = (Vec::new(), Vec::new());
    for r in 0..n {
        let (s, b) = round(r)?;
        store.push(s);
        base.push(b);
    }
    Ok((median(store), median(base)))
}

/// Measures both sides, the store first in even rounds and second in odd ones, so that neither
/// side always runs on a machine the other just left busy (caches, page cache, writeback).
pub fn pair(
    round: usize,
    store: impl FnOnce() -> AnyResult<f64>,
    base: impl FnOnce() -> AnyResult<f64>,
) -> AnyResult<(f64, f64)> {
    if round.is_multiple_of(2) {
        let s = store()?;
        Ok((s, base()?))
    } else {
        let b = base()?;
        Ok((store()?, b))
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
