// Card form extras (domain::card rules; the server checks again; works without this script).
(function(){
var f=document.querySelector('[data-card]');if(!f)return;
var D=f.dataset,$=function(i){return document.getElementById(i)},n=$('cc-number'),m=$('cc-exp-month'),y=$('cc-exp-year'),o=$('cc-brand'),s=$('cc-option'),
B={visa:['VISA',16,19],mastercard:['Mastercard',16],jcb:['JCB',16,17,18,19],amex:['American Express',15],diners:['Diners Club',14,15,16,17,18,19]};
function br(d){var a=+d.slice(0,2),b=+d.slice(0,3),c=d.length>3?+d.slice(0,4):0;
return d[0]=='4'?'visa':a>50&&a<56||c>2220&&c<2721?'mastercard':a==34||a==37?'amex':a==36||a==38||a==39||b>299&&b<306&&d.length>2||c==3095?'diners':c>3527&&c<3590?'jcb':''}
function dg(v){return v.replace(/[０-９]/g,function(c){return c.charCodeAt(0)-65296}).replace(/\D/g,'')}
function lu(d){for(var t=0,i=0,v;i<d.length;i++){v=d[d.length-1-i]*(i%2+1);t+=v>9?v-9:v}return t%10==0}
function mk(e,id,at,msg){var p=$(id);
if(msg&&!p){p=document.createElement('p');p.className='err';p.id=id;at.after(p)}
msg?p.textContent=msg:p&&p.remove();
e.forEach(function(x){sa(x,'aria-invalid',msg&&'true');sa(x,'aria-describedby',msg&&id)});return!msg}
function sa(x,k,v){v?x.setAttribute(k,v):x.removeAttribute(k)}
function on(x,t,h){x.addEventListener(t,h)}
function cn(z){var d=dg(n.value),b=B[br(d)],l=b?b[b.length-1]:19;
return mk([n],'cc-number-err',o,d&&(!b?z||d.length>3:d.length>l||(z||d.length==l)&&(b.indexOf(d.length)<1||!lu(d)))?D.msgNumber:'')}
function ce(z){var a=m.value.trim(),b=y.value.trim(),t=D.today.split('-');
return mk([m,y],'cc-exp-err',m.closest('fieldset'),(z||a.length>1&&b.length>1)&&(!/^\d\d?$/.test(a)||a<1||a>12||!/^(\d\d){1,2}$/.test(b)||((b.length<3?2e3:0)+ +b)*12+ +a<t[0]*12+ +t[1])?D.msgExpiry:'')}
on(n,'input',function(){var d=dg(n.value),k=br(d),g=k=='amex'||k=='diners'&&d.length==14?[4,10]:[4,8,12,16],
c=dg(n.value.slice(0,n.selectionStart)).length,v='',i,p=0,x;
for(i=0;i<d.length;i++)v+=(g.indexOf(i)<0?'':' ')+d[i];
if(v!=n.value){n.value=v;for(i=0;p<v.length&&i<c;p++)if(v[p]!=' ')i++;n.setSelectionRange(p,p)}
o.textContent=k?B[k][0]:'';
for(i=0;s&&i<s.options.length;i++){x=s.options[i];x.hidden=x.disabled=!!k&&(x.dataset.not||'').indexOf(k)>=0;if(x.disabled&&x.selected)s.selectedIndex=0}
cn()});
on(n,'blur',function(){cn(1)});
on(m,'input',function(){ce()});
on(y,'input',function(){ce()});
on(y,'blur',function(){ce(1)});
on(f,'submit',function(e){var a=cn(1),b=ce(1);if(!a||!b){e.preventDefault();(a?m:n).focus()}});
})();
