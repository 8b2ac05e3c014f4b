"""Audio signal processing: G.711, resampling, echo cancellation and feedback control."""
