//! The study's codebook: what each source variable is and how it was answered, and item
//! statistics that catch a mis-coded item. [`items`]: corrected item-total correlations per
//! scale and wave, computed on clean's answers (shown by `relcap check` and in the codebook
//! page).

pub mod items;
