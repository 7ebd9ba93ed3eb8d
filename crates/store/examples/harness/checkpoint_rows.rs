//! Synthetic `checkpoint_scores` rows, shared by the analytics harness and its criterion bench.

use store::analytics::CheckpointScore;

/// `n` rows over 7 models and `n / 1000` runs, with distinct labels (so distinct primary keys).
pub fn checkpoint_rows(n: usize) -> Vec<CheckpointScore> {
    (0..n)
        .map(|i| CheckpointScore {
            model: format!("model-{}", i % 7),
            run_id: format!("run-{}", i / 1000),
            label: format!("ckpt-{i}"),
            iteration: (i % 100_000) as i32,
            correct: (i % 97) as i32,
            total: 100,
            accuracy: f64::from((i % 97) as i32) / 100.0,
            scored_at: None,
        })
        .collect()
}
