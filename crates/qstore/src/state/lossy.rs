//! Lossy storage of state vectors, opt-in only: [`LossySpec`] (what the user asked for:
//! `max-infidelity=E`, `f32`, `mantissa-bits=K`, `zero-below=EPS`), [`Quantizer`] (what is
//! applied to each amplitude) and [`measure`] (the exact fidelity of the result).
//!
//! Every mode maps each amplitude to a nearby value of the *same* dtype whose low mantissa
//! bits are zero, so the stored state reads back in its original dtype with no decoder of its
//! own, deduplicates like any state, and the chunk codecs (byte shuffle + zstd) turn the zero
//! bits into the saving:
//! - `zero-below=EPS`: amplitudes with |a| < EPS become 0 (numerical dust);
//! - `mantissa-bits=K`: each real component rounded to K explicit significand bits (nearest,
//!   ties to even);
//! - `f32`: each component rounded to the nearest `f32` (nothing for a complex64 state);
//! - `max-infidelity=E`: each component rounded to a multiple of one power of two `step`
//!   (absolute error, which is what the fidelity measures: small amplitudes lose their
//!   bits first). The step starts from the estimate `1 - F ~ N step^2 / 6 / |psi|^2` and is
//!   halved until the exact fidelity meets the bound (then doubled while it still does).
//!
//! The fidelity is F = |<psi|phi>|^2 / (<psi|psi><phi|phi>) for input psi and stored phi,
//! computed over every amplitude as `1 - |phi_perp|^2 / |phi|^2` with `phi_perp = phi - c psi`,
//! `c = <psi|phi> / <psi|psi>` (each term of that sum is computed directly, so an infidelity
//! of 1e-12 is not lost to cancellation), in double precision with compensated sums. The bound
//! is met with a relative margin of 1e-9; bounds below [`MIN_INFIDELITY`] are refused as
//! meaningless at double precision.

use super::dtype::DType;
use super::input::DenseSource;
use crate::error::{Error, Result};

/// The smallest `max-infidelity` accepted.
pub const MIN_INFIDELITY: f64 = 1e-12;
/// The smallest squared norm of a state put lossy: below it the squares of its amplitudes
/// lose precision to underflow, and no fidelity could be vouched for.
pub const MIN_SQUARED_NORM: f64 = 1e-200;

/// How the values are approximated (besides [`LossySpec::zero_below`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rounding {
    /// Keep the values (only `zero-below` applies).
    None,
    /// Round to `f32`.
    F32,
    /// Round to this many explicit significand bits.
    MantissaBits(u32),
    /// Round to a power-of-two grid chosen for this bound on 1 - F.
    MaxInfidelity(f64),
}

/// A lossy mode as the user gave it (`max-infidelity=1e-6`, `f32,zero-below=1e-10`, ...).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossySpec {
    pub rounding: Rounding,
    /// Amplitudes with a smaller magnitude become zero (0: none).
    pub zero_below: f64,
}

impl std::str::FromStr for LossySpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |m: String| Error::InvalidArgument(format!("lossy mode {s:?}: {m}"));
        let mut spec = LossySpec {
            rounding: Rounding::None,
            zero_below: 0.0,
        };
        let mut set_rounding = |r: Rounding| {
            if spec.rounding != Rounding::None {
                return Err(bad(
                    "give one of max-infidelity, f32 and mantissa-bits".into()
                ));
            }
            spec.rounding = r;
            Ok(())
        };
        for part in s.split(',').map(str::trim) {
            let (key, value) = part.split_once('=').unwrap_or((part, ""));
            let num = || {
                value
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| bad(format!("{key} needs a number, got {value:?}")))
            };
            match key {
                "max-infidelity" => {
                    let e = num()?;
                    if e < MIN_INFIDELITY {
                        return Err(bad(format!(
                            "a bound below {MIN_INFIDELITY:e} is meaningless in double \
                             precision (use a lossless put)"
                        )));
                    }
                    if e >= 1.0 {
                        return Err(bad("the bound must be below 1".into()));
                    }
                    set_rounding(Rounding::MaxInfidelity(e))?;
                }
                "f32" if value.is_empty() => set_rounding(Rounding::F32)?,
                "mantissa-bits" => {
                    let k: u32 = value.parse().map_err(|_| {
                        bad(format!("mantissa-bits needs a whole number, got {value:?}"))
                    })?;
                    if !(1..=52).contains(&k) {
                        return Err(bad("mantissa-bits must be 1 to 52".into()));
                    }
                    set_rounding(Rounding::MantissaBits(k))?;
                }
                "zero-below" => {
                    let e = num()?;
                    if e <= 0.0 {
                        return Err(bad("zero-below must be positive".into()));
                    }
                    spec.zero_below = e;
                }
                _ => {
                    return Err(bad(format!(
                        "unknown mode {key:?} (max-infidelity=E, f32, mantissa-bits=K, \
                         zero-below=EPS, joined by commas)"
                    )));
                }
            }
        }
        Ok(spec)
    }
}

impl std::fmt::Display for LossySpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        match self.rounding {
            Rounding::None => {}
            Rounding::F32 => parts.push("f32".to_string()),
            Rounding::MantissaBits(k) => parts.push(format!("mantissa-bits={k}")),
            Rounding::MaxInfidelity(e) => parts.push(format!("max-infidelity={e:e}")),
        }
        if self.zero_below > 0.0 {
            parts.push(format!("zero-below={:e}", self.zero_below));
        }
        f.write_str(&parts.join(","))
    }
}

/// What is applied to every amplitude.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Quantizer {
    pub dtype: DType,
    /// Squared magnitude below which an amplitude becomes zero (0: none).
    pub zero_below_sq: f64,
    pub round: Round,
}

/// The per-component rounding of a [`Quantizer`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Round {
    None,
    /// Keep this many explicit significand bits.
    Bits(u32),
    /// Round to a multiple of this power of two.
    Step(f64),
}

fn round_bits_f64(x: f64, keep: u32) -> f64 {
    if keep >= 52 || x == 0.0 {
        return x;
    }
    let drop = 52 - keep;
    let b = x.to_bits();
    let half = (1u64 << (drop - 1)) - 1 + ((b >> drop) & 1);
    f64::from_bits(b.wrapping_add(half) & !((1u64 << drop) - 1))
}

fn round_bits_f32(x: f32, keep: u32) -> f32 {
    if keep >= 23 || x == 0.0 {
        return x;
    }
    let drop = 23 - keep;
    let b = x.to_bits();
    let half = (1u32 << (drop - 1)) - 1 + ((b >> drop) & 1);
    f32::from_bits(b.wrapping_add(half) & !((1u32 << drop) - 1))
}

impl Quantizer {
    /// The quantizer of `spec` for a state of `dtype`, except for `max-infidelity`, whose
    /// step [`choose`] finds.
    fn fixed(spec: &LossySpec, dtype: DType) -> Quantizer {
        let round = match spec.rounding {
            Rounding::None | Rounding::MaxInfidelity(_) => Round::None,
            Rounding::F32 if dtype == DType::Complex128 => Round::Bits(23),
            Rounding::F32 => Round::None,
            Rounding::MantissaBits(k) => Round::Bits(k),
        };
        Quantizer {
            dtype,
            zero_below_sq: spec.zero_below * spec.zero_below,
            round,
        }
    }

    fn component(&self, x: f64) -> f64 {
        match self.round {
            Round::None => x,
            Round::Bits(k) => match self.dtype {
                DType::Complex128 => {
                    if k == 23 {
                        // f32: also the f32 exponent range (tiny values flush as f32 does).
                        x as f32 as f64
                    } else {
                        round_bits_f64(x, k)
                    }
                }
                _ => round_bits_f32(x as f32, k) as f64,
            },
            Round::Step(s) => (x / s).round() * s,
        }
    }

    /// Apply to whole amplitudes in `b` (in place).
    pub fn apply(&self, b: &mut [u8]) {
        let item = self.dtype.item_size();
        for e in b.chunks_exact_mut(item) {
            let [re, im] = self.dtype.amplitude(e, 0);
            let (re, im) = if re * re + im * im < self.zero_below_sq {
                (0.0, 0.0)
            } else {
                (self.component(re), self.component(im))
            };
            match self.dtype {
                DType::Complex128 => {
                    e[..8].copy_from_slice(&re.to_le_bytes());
                    e[8..].copy_from_slice(&im.to_le_bytes());
                }
                _ => {
                    e[..4].copy_from_slice(&(re as f32).to_le_bytes());
                    e[4..].copy_from_slice(&(im as f32).to_le_bytes());
                }
            }
        }
    }

    /// True when applying changes nothing (an `f32` mode on a complex64 state).
    pub fn is_identity(&self) -> bool {
        self.zero_below_sq == 0.0 && self.round == Round::None
    }
}

/// A sum with Neumaier compensation.
#[derive(Clone, Copy, Default, Debug)]
struct Sum {
    s: f64,
    c: f64,
}

impl Sum {
    fn add(&mut self, x: f64) {
        let t = self.s + x;
        if self.s.abs() >= x.abs() {
            self.c += (self.s - t) + x;
        } else {
            self.c += (x - t) + self.s;
        }
        self.s = t;
    }
    fn value(&self) -> f64 {
        self.s + self.c
    }
    fn merge(&mut self, o: &Sum) {
        self.add(o.s);
        self.add(o.c);
    }
}

/// Bytes read per block while measuring.
const BLOCK: u64 = 1 << 20;

/// Visit the input and quantized amplitudes block by block, in parallel; `f` sums over one
/// block (`(input, quantized)` bytes) into `K` sums.
fn sums<const K: usize>(
    src: &dyn DenseSource,
    total: u64,
    q: &Quantizer,
    f: impl Fn(&[u8], &[u8], &mut [Sum; K]) + Sync,
) -> Result<[Sum; K]> {
    let blocks: Vec<u64> = (0..total.div_ceil(BLOCK)).collect();
    let parts = crate::par::map(blocks, |b| -> Result<[Sum; K]> {
        let start = b * BLOCK;
        let mut input = vec![0u8; BLOCK.min(total - start) as usize];
        src.read_at(start, &mut input)?;
        let mut s = [Sum::default(); K];
        // Zeros stay zeros in every mode and add nothing to any sum.
        if crate::state::input::all_zero(&input) {
            return Ok(s);
        }
        let mut out = input.clone();
        q.apply(&mut out);
        f(&input, &out, &mut s);
        Ok(s)
    });
    let mut acc = [Sum::default(); K];
    for p in parts {
        let p = p?;
        for k in 0..K {
            acc[k].merge(&p[k]);
        }
    }
    Ok(acc)
}

/// The fidelity between a state vector (`total` bytes of `src`) and its quantized form.
pub fn measure(src: &dyn DenseSource, total: u64, q: &Quantizer) -> Result<f64> {
    let dtype = q.dtype;
    let item = dtype.item_size();
    // <psi|psi>, <phi|phi>, Re and Im of <psi|phi>.
    let [pp, qq, re, im] = sums::<4>(src, total, q, |a, b, s| {
        for k in 0..a.len() / item {
            let [ar, ai] = dtype.amplitude(a, k);
            let [br, bi] = dtype.amplitude(b, k);
            s[0].add(ar * ar + ai * ai);
            s[1].add(br * br + bi * bi);
            s[2].add(ar * br + ai * bi);
            s[3].add(ar * bi - ai * br);
        }
    })?;
    let (pp, qq) = (pp.value(), qq.value());
    if pp < MIN_SQUARED_NORM {
        return Err(Error::InvalidArgument(format!(
            "the state's squared norm ({pp:e}) is too small to measure a fidelity in double \
             precision; normalise it before a lossy put"
        )));
    }
    if qq == 0.0 {
        return Ok(0.0);
    }
    let (cr, ci) = (re.value() / pp, im.value() / pp);
    let [perp] = sums::<1>(src, total, q, |a, b, s| {
        for k in 0..a.len() / item {
            let [ar, ai] = dtype.amplitude(a, k);
            let [br, bi] = dtype.amplitude(b, k);
            // phi - c psi
            let dr = br - (cr * ar - ci * ai);
            let di = bi - (cr * ai + ci * ar);
            s[0].add(dr * dr + di * di);
        }
    })?;
    Ok((1.0 - perp.value() / qq).clamp(0.0, 1.0))
}

/// True when a measured infidelity meets the bound `e` (with a relative margin for the
/// rounding of the measurement itself).
fn meets(fidelity: f64, e: f64) -> bool {
    (1.0 - fidelity) * (1.0 + 1e-9) <= e
}

/// The quantizer for `spec` on a state vector of `total` bytes in `src`, and the fidelity
/// of the state it produces.
pub fn choose(
    spec: &LossySpec,
    src: &dyn DenseSource,
    total: u64,
    dtype: DType,
) -> Result<(Quantizer, f64)> {
    let mut q = Quantizer::fixed(spec, dtype);
    if let Rounding::MantissaBits(k) = spec.rounding
        && dtype == DType::Complex64
        && k > 23
    {
        return Err(Error::InvalidArgument(format!(
            "mantissa-bits={k}: a complex64 state has 23 significand bits"
        )));
    }
    let Rounding::MaxInfidelity(e) = spec.rounding else {
        let f = if q.is_identity() {
            1.0
        } else {
            measure(src, total, &q)?
        };
        return Ok((q, f));
    };
    // The estimate: uniform rounding errors of step^2/12 per component, 2 per amplitude.
    let item = dtype.item_size() as u64;
    let [norm] = sums::<1>(src, total, &q, |a, _, s| {
        for k in 0..a.len() / item as usize {
            let [r, i] = dtype.amplitude(a, k);
            s[0].add(r * r + i * i);
        }
    })?;
    if norm.value() < MIN_SQUARED_NORM {
        return Err(Error::InvalidArgument(format!(
            "the state's squared norm ({:e}) is too small to measure a fidelity in double \
             precision; normalise it before a lossy put",
            norm.value()
        )));
    }
    let n = (total / item).max(1) as f64;
    let estimate = (6.0 * e * norm.value() / n).sqrt();
    if estimate.is_nan() || estimate <= 0.0 || !estimate.is_finite() {
        return Ok((q, 1.0));
    }
    let mut exp = estimate.log2().floor() as i32;
    let step = |x: i32| 2f64.powi(x.clamp(-1070, 1000));
    q.round = Round::Step(step(exp));
    let mut f = measure(src, total, &q)?;
    // The infidelity grows about 4x per doubling of the step: jump by that rule towards
    // the bound from the first measurement, then step back one at a time until it holds
    // (each try is two passes over the state).
    let base = q;
    let with = |exp: i32| Quantizer {
        round: Round::Step(step(exp)),
        ..base
    };
    if meets(f, e) {
        // Try the step the rule predicts; if it is too coarse, bisect between the last step
        // that held (`good`) and it (`bad`).
        let room = e / (1.0 - f).max(e * 1e-30);
        let top = exp + ((room.log2() / 2.0).floor() as i32).clamp(0, 64);
        let (mut good, mut bad) = (exp, top + 1);
        if top > exp {
            let ft = measure(src, total, &with(top))?;
            if meets(ft, e) {
                (q, f, good) = (with(top), ft, top);
            } else {
                bad = top;
            }
        }
        while bad - good > 1 {
            let mid = good + (bad - good) / 2;
            let fm = measure(src, total, &with(mid))?;
            if meets(fm, e) {
                (q, f, good) = (with(mid), fm, mid);
            } else {
                bad = mid;
            }
        }
    } else {
        while !meets(f, e) {
            if exp <= -1070 {
                // The finest step keeps every f64 exactly.
                q.round = Round::None;
                return Ok((q, measure(src, total, &q)?));
            }
            let room = (1.0 - f) / e;
            exp -= ((room.log2() / 2.0).ceil() as i32).clamp(1, 64);
            q = with(exp);
            f = measure(src, total, &q)?;
        }
    }
    Ok((q, f))
}

/// A [`DenseSource`] that reads another one through a [`Quantizer`]. Reads must start and
/// end on amplitude boundaries (the ingest pipeline reads whole chunks).
pub struct QuantizedSource<'a> {
    pub inner: &'a dyn DenseSource,
    pub q: Quantizer,
}

impl DenseSource for QuantizedSource<'_> {
    fn len(&self) -> u64 {
        self.inner.len()
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let item = self.q.dtype.item_size();
        if !offset.is_multiple_of(item as u64) || !buf.len().is_multiple_of(item) {
            return Err(Error::InvalidArgument(
                "a lossy put reads whole amplitudes".into(),
            ));
        }
        self.inner.read_at(offset, buf)?;
        self.q.apply(buf);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::input::SliceSource;
    use proptest::prelude::*;

    fn bytes(v: &[(f64, f64)], dtype: DType) -> Vec<u8> {
        v.iter()
            .flat_map(|&(r, i)| match dtype {
                DType::Complex128 => [r.to_le_bytes(), i.to_le_bytes()].concat(),
                _ => [(r as f32).to_le_bytes(), (i as f32).to_le_bytes()].concat(),
            })
            .collect()
    }

    fn sq_norm(a: &[u8], dtype: DType) -> f64 {
        (0..a.len() / dtype.item_size())
            .map(|k| {
                let [r, i] = dtype.amplitude(a, k);
                r * r + i * i
            })
            .sum()
    }

    /// 1 - F computed naively in extended steps, for cross-checking.
    fn infidelity(a: &[u8], b: &[u8], dtype: DType) -> f64 {
        let n = a.len() / dtype.item_size();
        let (mut pp, mut qq, mut re, mut im) = (0.0, 0.0, 0.0, 0.0);
        for k in 0..n {
            let [ar, ai] = dtype.amplitude(a, k);
            let [br, bi] = dtype.amplitude(b, k);
            pp += ar * ar + ai * ai;
            qq += br * br + bi * bi;
            re += ar * br + ai * bi;
            im += ar * bi - ai * br;
        }
        1.0 - ((re / pp) * (re / qq) + (im / pp) * (im / qq))
    }

    fn states() -> impl Strategy<Value = (Vec<(f64, f64)>, u8)> {
        let amp = prop_oneof![
            (-1.0f64..1.0, -1.0f64..1.0),
            Just((0.0, 0.0)),
            (-1e-300f64..1e-300, -1e-300f64..1e-300),
            Just((f64::MIN_POSITIVE / 4.0, -0.0)),
            (-1e-9f64..1e-9, -1e-9f64..1e-9),
        ];
        (proptest::collection::vec(amp, 1..300), 0u8..4)
    }

    /// Shape the random state into one of the adversarial families.
    fn family(mut v: Vec<(f64, f64)>, f: u8) -> Vec<(f64, f64)> {
        match f {
            // One dominant amplitude, the rest tiny.
            0 => {
                for x in v.iter_mut() {
                    *x = (x.0 * 1e-7, x.1 * 1e-7);
                }
                v[0] = (1.0, 0.0);
            }
            // Huge dynamic range.
            1 => {
                for (k, x) in v.iter_mut().enumerate() {
                    let s = 10f64.powi(-((k % 30) as i32) * 10);
                    *x = (x.0 * s, x.1 * s);
                }
            }
            // All magnitudes equal, phases vary.
            2 => {
                let m = 1.0 / (v.len() as f64).sqrt();
                for (k, x) in v.iter_mut().enumerate() {
                    let t = k as f64 * 0.7 + x.0;
                    *x = (m * t.cos(), m * t.sin());
                }
            }
            _ => {}
        }
        if v.iter().all(|x| x.0 == 0.0 && x.1 == 0.0) {
            v[0] = (1.0, 0.0);
        }
        v
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn the_bound_is_never_exceeded((v, f) in states(), e in prop::sample::select(vec![1e-12, 1e-9, 1e-6, 1e-3, 0.1]), c64 in any::<bool>()) {
            let dtype = if c64 { DType::Complex64 } else { DType::Complex128 };
            let v = family(v, f);
            let b = bytes(&v, dtype);
            let spec = LossySpec { rounding: Rounding::MaxInfidelity(e), zero_below: 0.0 };
            let Ok((q, fid)) = choose(&spec, &SliceSource(&b), b.len() as u64, dtype) else {
                // Refused: a norm too small to measure.
                prop_assert!(sq_norm(&b, dtype) < MIN_SQUARED_NORM);
                return Ok(());
            };
            let mut out = b.clone();
            q.apply(&mut out);
            prop_assert!(1.0 - fid <= e, "measured {} > {e}", 1.0 - fid);
            let naive = infidelity(&b, &out, dtype);
            prop_assert!(naive <= e * (1.0 + 1e-6) + 1e-15, "naive {naive} > {e}");
            // The measurement agrees with the naive one where that one is accurate.
            prop_assert!((naive - (1.0 - fid)).abs() <= 1e-12 + 1e-6 * naive, "{naive} vs {}", 1.0 - fid);
        }

        #[test]
        fn fixed_modes_report_their_fidelity((v, f) in states(), k in 1u32..23, eps in prop::sample::select(vec![1e-12, 1e-6, 1e-2])) {
            let v = family(v, f);
            let b = bytes(&v, DType::Complex128);
            for spec in [
                LossySpec { rounding: Rounding::F32, zero_below: 0.0 },
                LossySpec { rounding: Rounding::MantissaBits(k), zero_below: 0.0 },
                LossySpec { rounding: Rounding::None, zero_below: eps },
            ] {
                let Ok((q, fid)) = choose(&spec, &SliceSource(&b), b.len() as u64, DType::Complex128) else {
                    prop_assert!(sq_norm(&b, DType::Complex128) < MIN_SQUARED_NORM);
                    continue;
                };
                let mut out = b.clone();
                q.apply(&mut out);
                if sq_norm(&out, DType::Complex128) == 0.0 {
                    // Nothing left: fidelity 0 (such a put is refused).
                    prop_assert_eq!(fid, 0.0);
                    continue;
                }
                if sq_norm(&out, DType::Complex128) < MIN_SQUARED_NORM {
                    // Too little left for the naive cross-check to mean anything.
                    prop_assert!((0.0..=1.0).contains(&fid));
                    continue;
                }
                let naive = infidelity(&b, &out, DType::Complex128);
                prop_assert!((naive - (1.0 - fid)).abs() <= 1e-12 + 1e-6 * naive.abs(), "{spec}: {naive} vs {}", 1.0 - fid);
            }
        }

        #[test]
        fn spec_parser_never_panics(s in ".{0,40}") {
            let _ = s.parse::<LossySpec>();
        }
    }

    #[test]
    fn modes_round_as_documented() {
        let q = |k| Quantizer {
            dtype: DType::Complex128,
            zero_below_sq: 0.0,
            round: Round::Bits(k),
        };
        assert_eq!(q(2).component(1.0 + 0.25 + 0.125), 1.5); // 1.011b -> 1.10b (nearest)
        assert_eq!(q(1).component(1.25), 1.0); // tie to even
        assert_eq!(q(1).component(1.75), 2.0); // carry into the exponent
        assert_eq!(q(23).component(0.1), 0.1f32 as f64);
        let s = Quantizer {
            dtype: DType::Complex128,
            zero_below_sq: 0.01,
            round: Round::Step(0.125),
        };
        let mut b = bytes(&[(0.3, 0.3), (0.05, 0.05)], DType::Complex128);
        s.apply(&mut b);
        assert_eq!(b, bytes(&[(0.25, 0.25), (0.0, 0.0)], DType::Complex128));
    }

    #[test]
    fn specs_parse_and_print() {
        let s: LossySpec = "max-infidelity=1e-6".parse().unwrap();
        assert_eq!(s.rounding, Rounding::MaxInfidelity(1e-6));
        assert_eq!(s.to_string(), "max-infidelity=1e-6");
        let s: LossySpec = "f32, zero-below=1e-10".parse().unwrap();
        assert_eq!(s.to_string(), "f32,zero-below=1e-10");
        for bad in [
            "max-infidelity=1e-13",
            "max-infidelity=2",
            "f32,mantissa-bits=3",
            "mantissa-bits=0",
            "mantissa-bits=x",
            "zero-below=-1",
            "lossless",
            "",
        ] {
            assert!(bad.parse::<LossySpec>().is_err(), "{bad}");
        }
    }
}
