// The identity step's record-number field. A number refused (or one the PACS could not be
// asked about) comes back in the field, focused, with the problem above it. Its text is
// selected, so that the next scan of the wristband (a scanner types into whatever has focus)
// or a number typed again replaces it instead of landing in front of it; Enter still sends it
// again as it is. Without this file the field is only focused.
"use strict";

(() => {
  const field = document.getElementById("local_patient_id");
  const shown = document.getElementById("problem");
  if (!field || !shown || !field.value) return;
  field.focus();
  field.select();
})();
