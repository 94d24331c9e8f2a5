"""Shared pieces of the governance console: the acting user, the forms of its action pages (drafts,
submissions, decisions, releases, rollbacks, comparisons), how a ``DomainError`` is reported, and the ``ReadOnly``
base for pages whose records change only through ``governance.services``."""

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.http import HttpRequest

from config.errors import DomainError
from governance.models import (
    GovernedObject,
    Label,
    Version,
    VersionStatus,
)


def console_user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


class JSONTextarea(forms.Textarea):
    def format_value(self, value: Any) -> str:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                return value
        return json.dumps(value, indent=2, ensure_ascii=False)


class DraftForm(forms.ModelForm):
    draft = forms.JSONField(
        widget=JSONTextarea(attrs={"rows": 24, "cols": 100, "class": "vLargeTextField"}),
        help_text="The spec being edited, as JSON. It is validated when you submit it for review.",
    )

    class Meta:
        model = GovernedObject
        fields = ["slug", "name", "draft"]

    def clean_draft(self) -> Any:
        draft = self.cleaned_data["draft"]
        if not isinstance(draft, dict):
            raise forms.ValidationError("The draft must be a JSON object.")
        return draft


class SubmitForm(forms.Form):
    note = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}), help_text="What changed, and why.")
    label = forms.ModelChoiceField(
        Label.objects.all(),
        to_field_name="name",
        initial="production",
        help_text="Where this version is meant to go; reviewers see the diff against it.",
    )


class ObjectRollbackForm(forms.Form):
    label = forms.ModelChoiceField(Label.objects.all(), to_field_name="name")
    version = forms.ModelChoiceField(Version.objects.none(), help_text="An earlier approved version.")
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}))

    def __init__(self, *args: Any, obj: GovernedObject, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["version"].queryset = obj.versions.filter(status=VersionStatus.APPROVED)  # type: ignore[attr-defined]


class DecideForm(forms.Form):
    comment = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    digest = forms.CharField(widget=forms.HiddenInput)
    arguments = forms.JSONField(
        required=False,
        widget=JSONTextarea(attrs={"rows": 8, "cols": 80}),
        help_text="Change them and press “Approve with these arguments” to approve the call as edited.",
    )


class ReleaseForm(forms.Form):
    label = forms.ModelChoiceField(Label.objects.all(), to_field_name="name", initial="production")
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), help_text="What this release is for.")


class CompareForm(forms.Form):
    old = forms.ModelChoiceField(Version.objects.none(), label="from", to_field_name="number")
    new = forms.ModelChoiceField(Version.objects.none(), label="to", to_field_name="number")

    def __init__(self, *args: Any, obj: GovernedObject, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        versions = obj.versions.order_by("-number")
        self.fields["old"].queryset = versions  # type: ignore[attr-defined]
        self.fields["new"].queryset = versions  # type: ignore[attr-defined]


class ReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}))


def report_error(request: HttpRequest, error: DomainError) -> None:
    details = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in error.fields.items())
    messages.error(request, f"{error.message} {details}".strip())


class ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
