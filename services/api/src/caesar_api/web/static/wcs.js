// Sky (RA, Dec in degrees) to pixel for the celestial FITS WCS of a preview (pure).
//
// Zenithal projections with the reference point at the native pole (TAN, SIN, ARC, and
// a plain linear fallback for CAR/unknown), the usual case of radio images. Enough to
// draw markers over a preview; the catalogue's positions stay the authority.

const RAD = Math.PI / 180;

function card(cards, key, fallback) {
  const value = Number(cards[key]);
  return key in cards && Number.isFinite(value) ? value : fallback;
}

/** The 2x2 linear part (degrees per pixel): CD, or PC x CDELT, or CDELT with CROTA2. */
function matrix(cards) {
  if ("CD1_1" in cards || "CD2_2" in cards) {
    return [card(cards, "CD1_1", 0), card(cards, "CD1_2", 0), card(cards, "CD2_1", 0), card(cards, "CD2_2", 0)];
  }
  const c1 = card(cards, "CDELT1", 1);
  const c2 = card(cards, "CDELT2", 1);
  if ("PC1_1" in cards || "PC2_2" in cards) {
    return [card(cards, "PC1_1", 1) * c1, card(cards, "PC1_2", 0) * c1, card(cards, "PC2_1", 0) * c2, card(cards, "PC2_2", 1) * c2];
  }
  const rot = card(cards, "CROTA2", 0) * RAD;
  return [c1 * Math.cos(rot), -c2 * Math.sin(rot), c1 * Math.sin(rot), c2 * Math.cos(rot)];
}

/** A function ``(ra, dec) -> [x, y]`` (0-based pixel, FITS axis order), and the scale. */
export function skyToPixel(cards) {
  const ctype = String(cards.CTYPE1 || "");
  const proj = ctype.length >= 8 ? ctype.slice(5, 8).replace(/-/g, "") : "";
  const ra0 = card(cards, "CRVAL1", 0) * RAD;
  const dec0 = card(cards, "CRVAL2", 0) * RAD;
  const crpix1 = card(cards, "CRPIX1", 1);
  const crpix2 = card(cards, "CRPIX2", 1);
  const [a, b, c, d] = matrix(cards);
  const det = a * d - b * c;
  const toPixel = (x, y) => [(d * x - b * y) / det + crpix1 - 1, (-c * x + a * y) / det + crpix2 - 1];
  const project = (ra, dec) => {
    const r = ra * RAD;
    const t = dec * RAD;
    const cosC = Math.sin(dec0) * Math.sin(t) + Math.cos(dec0) * Math.cos(t) * Math.cos(r - ra0);
    const xi = Math.cos(t) * Math.sin(r - ra0);
    const eta = Math.cos(dec0) * Math.sin(t) - Math.sin(dec0) * Math.cos(t) * Math.cos(r - ra0);
    if (proj === "SIN") return [xi / RAD, eta / RAD];
    if (proj === "ARC") {
      const angle = Math.acos(Math.min(1, Math.max(-1, cosC)));
      const k = angle === 0 ? 1 : angle / Math.sin(angle);
      return [(k * xi) / RAD, (k * eta) / RAD];
    }
    if (proj === "TAN" || proj === "") {
      if (cosC <= 0) return [NaN, NaN];
      return [xi / cosC / RAD, eta / cosC / RAD];
    }
    // CAR and others: linear offsets (fine over a small field).
    const dra = ((((ra - ra0 / RAD) + 540) % 360) - 180);
    return [dra * Math.cos(dec0), dec - dec0 / RAD];
  };
  const pixelDeg = Math.sqrt(Math.abs(det)) || 1;
  return {
    toPixel: (ra, dec) => toPixel(...project(ra, dec)),
    arcsecPerPixel: pixelDeg * 3600,
  };
}
