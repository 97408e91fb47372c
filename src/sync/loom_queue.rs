//! Loom stand-in for `crossbeam_channel`'s bounded queue. Being written (issue 4); a
//! `--cfg loom` build fails loudly until it lands rather than modelling nothing.
compile_error!("the loom queue stand-in is not written yet");
