"""Chinese licence plates: grammar and normalisation, reading (PP-OCR through onnxruntime), voting, matching."""
