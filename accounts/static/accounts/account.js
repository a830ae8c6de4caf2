// 我的: the messages switch is saved as it is turned (the form's 保存 is for pages without JavaScript).
document.querySelectorAll("form[data-autosubmit]").forEach(function (form) {
  form.addEventListener("change", function () { form.submit(); });
});
