"""Personas, style guides and conversations in the console.

Personas and style guides are governed objects (drafts, versions, review, release, rollback: the shared pages).
A conversation's page shows its transcript with the flags of each message; when a conversation is handed to a
person, an Operator answers it there, then hands it back to the persona or closes it, through the same services
the API uses.
"""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from config.changelists import LargeTableAdmin
from config.errors import DomainError
from config.lookups import object_or_404
from governance.admin import GovernedObjectAdmin, ReadOnly, console_user, report_error
from governance.admin_filters import LabelFilter
from governance.models import ReviewKind
from governance.registry import ReviewPage, register_review_page
from personas import services
from personas.models import Conversation, ConversationStatus, Persona, StyleGuide


@admin.register(StyleGuide)
class StyleGuideAdmin(GovernedObjectAdmin):
    kind = services.STYLE_GUIDE_KIND


@admin.register(Persona)
class PersonaAdmin(GovernedObjectAdmin):
    kind = services.PERSONA_KIND


class OperatorForm(forms.Form):
    text = forms.CharField(
        required=False,
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
        help_text="Your reply, sent to the user as an operator message; or a note when you hand back or close.",
    )


@admin.register(Conversation)
class ConversationAdmin(LargeTableAdmin, ReadOnly):
    list_display = ("short_id", "persona", "version_number", "label", "client", "status", "updated_at")
    # A large table (LargeTableAdmin): labels from the labels table and a date filter, not a SELECT DISTINCT
    # over every row for the labels' choices, nor a date_hierarchy (which reads every row's date).
    list_filter = ("status", LabelFilter, "persona", "created_at")
    list_select_related = ("persona", "version", "client")
    search_fields = ("id", "persona__slug", "client__username", "escalation_reason")
    list_defer = ("state", "policy_versions", "persona__draft", "version__spec", "version__checks")
    change_form_template = "admin/personas/conversation_change_form.html"
    fields = (
        "persona",
        "version_number",
        "label",
        "client",
        "status",
        "escalation_reason",
        "pinned_policies",
        "rating",
        "comment",
        "created_at",
        "closed_at",
        "transcript",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Conversation]:
        return super().get_queryset(request).select_related("persona", "version", "client")

    @admin.display(description="conversation", ordering="id")
    def short_id(self, conversation: Conversation) -> str:
        return str(conversation.pk)[:8]

    @admin.display(description="version", ordering="version__number")
    def version_number(self, conversation: Conversation) -> str:
        return f"v{conversation.version.number}"

    @admin.display(description="guardrail policies")
    def pinned_policies(self, conversation: Conversation) -> str:
        return ", ".join(f"{p['slug']} v{p['version']}" for p in conversation.policy_versions) or "none"

    @admin.display(description="transcript")
    def transcript(self, conversation: Conversation) -> str:
        rows = [
            (
                message.seq,
                message.role + (f" ({message.author.username})" if message.author else ""),
                message.text,
                ", ".join(flag["kind"] for flag in message.flags) or "",
                "; ".join(r for flag in message.flags for r in flag.get("violations", []) + flag.get("reasons", [])),
                f"{message.flow}/{message.step}" if message.flow else "",
                message.created_at.strftime("%H:%M:%S"),
            )
            for message in conversation.messages.select_related("author")
        ]
        return format_html(
            '<table class="transcript"><tr><th>#</th><th>from</th><th>text</th><th>flags</th><th>why</th>'
            "<th>flow/step</th><th>time</th></tr>{}</table>",
            format_html_join(
                "",
                '<tr class="role-{}"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><small>{}</small></td>'
                "<td>{}</td><td>{}</td></tr>",
                ((row[1].split(" ")[0], *row) for row in rows),
            ),
        )

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None) -> Any:
        conversation = object_or_404(self.get_queryset(request), pk=object_id)
        can_answer = (
            request.user.has_perm(services.REPLY_PERMISSION) and conversation.status == ConversationStatus.ESCALATED
        )
        form = OperatorForm(request.POST or None)
        if request.method == "POST" and can_answer and form.is_valid():
            text = form.cleaned_data["text"]
            try:
                if "_reply" in request.POST:
                    services.conversation_reply(actor=console_user(request), conversation=conversation, text=text)
                    messages.success(request, "Your reply was sent.")
                elif "_hand_back" in request.POST:
                    services.conversation_hand_back(
                        actor=console_user(request), conversation=conversation, comment=text
                    )
                    messages.success(request, "The conversation is back with the persona.")
                elif "_close" in request.POST:
                    services.conversation_close(
                        actor=console_user(request), conversation=conversation, comment=text, as_operator=True
                    )
                    messages.success(request, "The conversation is closed.")
            except DomainError as error:
                report_error(request, error)
            return HttpResponseRedirect(request.path)
        extra = {**(extra_context or {}), "operator_form": form, "can_answer": can_answer}
        return super().change_view(request, object_id, form_url, extra_context=extra)


register_review_page(
    ReviewKind.HANDOVER,
    ReviewPage(answered_at=lambda item: reverse("admin:personas_conversation_change", args=[item.subject_id])),
)
