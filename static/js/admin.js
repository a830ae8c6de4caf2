// wxrecharge's admin: a form marked data-confirm asks before it is sent (rolling or revoking
// an API client's key cannot be undone).
document.addEventListener("submit", (event) => {
  const message = event.target.dataset ? event.target.dataset.confirm : "";
  if (message && !window.confirm(message)) {
    event.preventDefault();
  }
});
