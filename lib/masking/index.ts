// The masking engine: policy compiles mask rules into a MaskSpec, protocol engines call the Masker.
export {
  compileMasker,
  WHOLE_REDACTION,
  type Masker,
  type MaskSpec,
  type MaskTextResult,
  type Replacement,
} from "./masker.js";
export {
  DEFAULT_DETECTORS,
  DETECTOR_NAMES,
  type Detector,
  type DetectorName,
  type Matcher,
  type Span,
} from "./detectors.js";
