"""Which rules govern a path: today one answer for every path (cached
forever), the seam where repositories with their own rules slot in. May
import store.paths and settings only."""
