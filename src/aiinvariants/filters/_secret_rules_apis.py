"""Chat, payment and AI-API credential formats (part of the ruleset).

Split from :mod:`aiinvariants.filters._secret_rules` to keep modules small;
the same rules apply: written from each provider's own documentation of its
format (named in ``source``), never copied from another scanner.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiinvariants.filters._secret_values import random_letters

__all__ = ["register_api_rules"]

_A = "A-Za-z0-9"
_U = "A-Za-z0-9_-"
_SLACK = "Slack API docs, 'Token types'"
_SLACK_IDS = r"(?:[0-9]{8,14}|[0-9]{1,7}(?=-[0-9]{1,14}-))-"


def register_api_rules(rule: Callable[..., Any]) -> None:
    """Add the chat, payment and AI-API rules through ``rule(...)``."""
    # -- chat, messaging and collaboration -----------------------------------------
    # The numeric ids after the prefix (workspace, user) have no documented
    # width; an older workspace's is short. A short first one is taken when
    # a second numeric id follows (xoxp-523423-234243-…), which a word
    # after the prefix (xoxp-1-TokenHere) is not.
    rule(
        "slack-bot-token",
        "Slack",
        r"xoxb-" + _SLACK_IDS + r"[0-9A-Za-z-]{8,120}",
        ("xoxb-",),
        "bot token (xoxb-)",
        _SLACK,
    )
    rule(
        "slack-user-token",
        "Slack",
        r"xox[pas]-" + _SLACK_IDS + r"[0-9A-Za-z-]{8,120}",
        ("xoxp-", "xoxa-", "xoxs-"),
        "user, workspace or legacy token",
        _SLACK,
    )
    rule(
        "slack-app-token",
        "Slack",
        r"xapp-\d-[A-Z0-9]{8,14}-\d{8,16}-[a-f0-9]{32,80}",
        ("xapp-",),
        "app-level token (xapp-)",
        _SLACK,
    )
    rule(
        "slack-config-token",
        "Slack",
        r"xoxe(?:\.xox[bp])?-\d-[A-Za-z0-9]{40,200}",
        ("xoxe-", "xoxe.xoxp-", "xoxe.xoxb-"),
        "configuration or refresh token (xoxe)",
        _SLACK,
    )
    rule(
        "slack-webhook-url",
        "Slack",
        r"hooks\.slack\.com/(?:services|workflows|triggers)/T[A-Z0-9]{6,12}/"
        r"[A-Z0-9]{6,14}/[A-Za-z0-9]{18,32}",
        ("hooks.slack.com/",),
        "incoming webhook URL",
        "Slack API docs, 'Incoming webhooks'",
    )
    rule(
        "discord-webhook-url",
        "Discord",
        r"discord(?:app)?\.com/api/webhooks/\d{16,20}/[A-Za-z0-9_-]{60,70}",
        ("discord.com/api/webhooks/", "discordapp.com/api/webhooks/"),
        "webhook URL with token",
        "Discord developer docs, 'Webhook resource'",
    )
    rule(
        "linear-api-key",
        "Linear",
        r"lin_(?:api|oauth)_[A-Za-z0-9]{40}",
        ("lin_api_", "lin_oauth_"),
        "API key or OAuth token",
        "Linear developer docs",
    )
    rule(
        "notion-token",
        "Notion",
        r"(?:ntn_[A-Za-z0-9]{46}|secret_[A-Za-z0-9]{43})",
        ("ntn_", "secret_"),
        "integration token (ntn_, formerly secret_)",
        "Notion developer docs, 'Authorization'",
    )
    rule(
        "figma-pat",
        "Figma",
        rf"figd_[{_U}]{{40,64}}",
        ("figd_",),
        "personal access token (figd_)",
        "Figma developer docs, 'Access tokens'",
    )
    rule(
        "airtable-pat",
        "Airtable",
        r"pat[A-Za-z0-9]{14}\.[a-f0-9]{64}",
        ("pat",),
        "personal access token (pat….hex)",
        "Airtable support, 'Personal access tokens'",
    )
    rule(
        "contentful-pat",
        "Contentful",
        rf"CFPAT-[{_U}]{{43}}",
        ("cfpat-",),
        "personal access token (CFPAT-)",
        "Contentful docs, 'Personal access tokens'",
    )
    rule(
        "typeform-pat",
        "Typeform",
        r"tfp_[A-Za-z0-9_=.-]{44,64}",
        ("tfp_",),
        "personal access token (tfp_)",
        "Typeform developer docs, 'Personal access token'",
    )
    rule(
        "mailgun-api-key",
        "Mailgun",
        r"key-[0-9a-z]{32}",
        ("key-",),
        "private API key (key- + 32)",
        "Mailgun docs, 'API keys'",
    )
    rule(
        "sendgrid-api-key",
        "Twilio SendGrid",
        rf"SG\.[{_U}]{{22}}\.[{_U}]{{43}}",
        ("sg.",),
        "API key (SG.<22>.<43>)",
        "SendGrid docs, 'API keys'",
    )
    rule(
        "twilio-api-key",
        "Twilio",
        r"SK[0-9a-f]{32}",
        ("sk",),
        "API key SID (SK + 32 hex)",
        "Twilio docs, 'API keys'",
    )
    # -- payments -------------------------------------------------------------------
    rule(
        "stripe-secret-key",
        "Stripe",
        r"sk_(?:live|test)_[A-Za-z0-9]{24,247}",
        ("sk_live_", "sk_test_"),
        "secret key (sk_live_/sk_test_)",
        "Stripe docs, 'API keys'",
    )
    rule(
        "stripe-restricted-key",
        "Stripe",
        r"rk_(?:live|test)_[A-Za-z0-9]{24,247}",
        ("rk_live_", "rk_test_"),
        "restricted key (rk_live_/rk_test_)",
        "Stripe docs, 'Restricted API keys'",
    )
    rule(
        "stripe-webhook-secret",
        "Stripe",
        r"whsec_[A-Za-z0-9+/=]{32,80}",
        ("whsec_",),
        "webhook signing secret (whsec_)",
        "Stripe docs, 'Check webhook signatures'",
    )
    rule(
        "square-access-token",
        "Square",
        r"(?:EAAA[A-Za-z0-9_-]{56,80}|sq0atp-[A-Za-z0-9_-]{22})",
        ("eaaa", "sq0atp-"),
        "access token (EAAA…, legacy sq0atp-)",
        "Square developer docs, 'Access tokens and other credentials'",
    )
    rule(
        "square-oauth-secret",
        "Square",
        r"sq0csp-[A-Za-z0-9_-]{43}",
        ("sq0csp-",),
        "application secret (sq0csp-)",
        "Square developer docs, 'OAuth API'",
    )
    rule(
        "braintree-access-token",
        "PayPal Braintree",
        r"access_token\$(?:production|sandbox)\$[0-9a-z]{16}\$[0-9a-f]{32}",
        ("token",),
        "access token (access_token$env$id$hex)",
        "Braintree docs, 'Access tokens'",
        kind="context",
        back=7,
        shape=r"\$(?:production|sandbox)\$",
    )
    rule(
        "shopify-token",
        "Shopify",
        r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}",
        ("shpat_", "shpca_", "shppa_", "shpss_"),
        "Admin API, custom app, private app token or shared secret",
        "Shopify dev docs, 'Access tokens'",
    )
    rule(
        "shippo-api-token",
        "Shippo",
        r"shippo_(?:live|test)_[a-f0-9]{40}",
        ("shippo_live_", "shippo_test_"),
        "API token",
        "Shippo docs, 'Authentication'",
    )
    rule(
        "flutterwave-secret-key",
        "Flutterwave",
        r"FLWSECK(?:_TEST)?-[a-f0-9]{32}-X",
        ("flwseck",),
        "secret key (FLWSECK-…-X)",
        "Flutterwave docs, 'API keys'",
    )
    # -- AI and data APIs -----------------------------------------------------------
    rule(
        "openai-project-key",
        "OpenAI",
        r"sk-proj-[A-Za-z0-9_-]{40,200}",
        ("sk-proj-",),
        "project API key (sk-proj-)",
        "OpenAI platform docs, 'API keys'",
    )
    rule(
        "openai-service-account-key",
        "OpenAI",
        r"sk-svcacct-[A-Za-z0-9_-]{40,200}",
        ("sk-svcacct-",),
        "service account key (sk-svcacct-)",
        "OpenAI platform docs, 'Service accounts'",
    )
    rule(
        "openai-admin-key",
        "OpenAI",
        r"sk-admin-[A-Za-z0-9_-]{40,200}",
        ("sk-admin-",),
        "admin API key (sk-admin-)",
        "OpenAI platform docs, 'Admin API keys'",
    )
    rule(
        "openai-legacy-key",
        "OpenAI",
        r"sk-[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}",
        ("sk-",),
        "user API key with the T3BlbkFJ marker (base64 'OpenAI')",
        "OpenAI platform docs, 'API keys' (legacy format)",
    )
    rule(
        "anthropic-api-key",
        "Anthropic",
        r"sk-ant-(?:api|admin)\d\d-[A-Za-z0-9_-]{80,100}",
        ("sk-ant-",),
        "API or admin key (sk-ant-api03-, sk-ant-admin01-)",
        "Anthropic docs, 'API keys'",
    )
    rule(
        "huggingface-token",
        "Hugging Face",
        r"hf_[A-Za-z]{34}",
        ("hf_",),
        "user access token (hf_; random letters, not a camelCase name)",
        "Hugging Face docs, 'User access tokens'",
        validate=random_letters,
    )
    rule(
        "telegram-bot-token",
        "Telegram",
        r"[0-9]{8,10}:AA[A-Za-z0-9_-]{33}(?![A-Za-z0-9_-])",
        ("aa",),
        "bot token (<bot id>:AA + 33 chars)",
        "Telegram Bot API docs, 'Authorizing your bot'",
        back=11,
    )
    rule(
        "mailchimp-api-key",
        "Mailchimp",
        r"[0-9a-f]{32}-us[0-9]{1,2}(?![0-9])",
        ("-us",),
        "Marketing API key (32 hex + -us<data center>)",
        "Mailchimp Marketing API docs, 'Quick start' (API key and data center)",
        back=32,
    )
    rule(
        "dynatrace-token",
        "Dynatrace",
        r"dt0[a-z][0-9]{2}\.[A-Z0-9]{24}\.[A-Z0-9]{64}",
        ("dt0",),
        "access token (prefix . 24-char public portion . 64-char secret portion)",
        "Dynatrace docs, 'Dynatrace API - Tokens and authentication' (token format)",
    )
    rule(
        "sourcegraph-access-token",
        "Sourcegraph",
        r"sgp_(?:[a-fA-F0-9]{16}_|local_)?[a-fA-F0-9]{40}",
        ("sgp_",),
        "access token (sgp_)",
        "Sourcegraph docs, 'Revoking an access token' (tokens start with sgp_)",
    )
    rule(
        "huggingface-org-token",
        "Hugging Face",
        r"api_org_[A-Za-z]{34}",
        ("api_org_",),
        "organization API token (api_org_)",
        "Hugging Face docs, 'User access tokens' (organization tokens)",
        validate=random_letters,
    )
    rule(
        "groq-api-key",
        "Groq",
        r"gsk_[A-Za-z0-9]{52}",
        ("gsk_",),
        "API key (gsk_)",
        "GroqCloud docs, 'API keys'",
    )
    rule(
        "xai-api-key",
        "xAI",
        r"xai-[A-Za-z0-9]{70,90}",
        ("xai-",),
        "API key (xai-)",
        "xAI docs, 'API keys'",
    )
    rule(
        "perplexity-api-key",
        "Perplexity",
        r"pplx-[A-Za-z0-9]{40,56}",
        ("pplx-",),
        "API key (pplx-)",
        "Perplexity API docs",
    )
    rule(
        "replicate-api-token",
        "Replicate",
        r"r8_[A-Za-z0-9]{37}",
        ("r8_",),
        "API token (r8_)",
        "Replicate docs, 'API tokens'",
    )
    rule(
        "langsmith-api-key",
        "LangChain",
        r"lsv2_(?:pt|sk)_[a-f0-9]{32}_[a-f0-9]{10}",
        ("lsv2_pt_", "lsv2_sk_"),
        "LangSmith API key (lsv2_)",
        "LangSmith docs, 'API keys'",
    )
    rule(
        "mapbox-secret-token",
        "Mapbox",
        r"sk\.eyJ[A-Za-z0-9_-]{20,200}\.[A-Za-z0-9_-]{20,40}",
        ("sk.eyj",),
        "secret access token (sk.eyJ…)",
        "Mapbox docs, 'Access tokens'",
    )
    rule(
        "dropbox-access-token",
        "Dropbox",
        r"sl\.[A-Za-z0-9_-]{130,160}",
        ("sl.",),
        "short-lived access token (sl.)",
        "Dropbox developer docs, 'OAuth guide'",
    )
    rule(
        "onepassword-service-token",
        "1Password",
        r"ops_eyJ[A-Za-z0-9+/=_-]{100,380}",
        ("ops_eyj",),
        "service account token (ops_)",
        "1Password developer docs, 'Service accounts'",
    )
    rule(
        "onepassword-secret-key",
        "1Password",
        r"A3-[A-Z0-9]{6}-(?:[A-Z0-9]{11}|[A-Z0-9]{6}-[A-Z0-9]{5})-[A-Z0-9]{5}-"
        r"[A-Z0-9]{5}-[A-Z0-9]{5}",
        ("a3-",),
        "account Secret Key (A3-)",
        "1Password support, 'About your Secret Key'",
    )
