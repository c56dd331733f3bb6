// What every page shares: whether the server requires the API key, and who is acting.

export const session = { auth: false };

/** The "acting as" name: recorded as the actor of gate decisions and cancellations. */
export function actor() {
  const input = document.getElementById("actor");
  return input ? input.value.trim() : "";
}
